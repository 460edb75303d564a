/* reference_kernels.h: the reference layer (kernels/reference/) under ref_*
 * names, for tests that compare it with the build's kernels. The Makefile
 * compiles each kernels/reference/ file once more, into tests/ref_NAME.o, with
 * every API function renamed ref_* (KERNEL_API) and this header included
 * first: there kernels.h's declarations, renamed, meet these, and the compiler
 * rejects any that differ. */
#ifndef REFERENCE_KERNELS_H
#define REFERENCE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

const char* ref_matmul_path(void);
size_t ref_matmul_scratch_floats(int C, int OC);
size_t ref_matmul_backward_scratch_floats(int C, int OC);
void ref_matmul_forward(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                        int BT, int C, int OC);
void ref_matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC);
void ref_matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, float* scratch, int BT, int C, int OC, GradMode mode);

size_t ref_attention_scratch_floats(int T, int C, int NH);
void ref_attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C, int NH,
                           float dropout, uint64_t key);
void ref_attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* stats,
                            int B, int T, int C, int NH, float dropout, uint64_t key);
void ref_attention_decode(float* out, float* scores, const float* q, const float* k_cache, const float* v_cache,
                          int n_ctx, int C, int NH);

void ref_layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int N, int C);
void ref_residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* a,
                                    const float* b, const float* weight, const float* bias, int N, int C);
void ref_layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* mean, const float* rstd, int N, int C);

void ref_sinusoidal_table(float* pe, int T, int C);
void ref_rope_table(float* cs, int T, int hs);
void ref_rope_forward(float* qkv, const float* cs, int B, int T, int C, int NH);
void ref_rope_backward(float* dqkv, const float* cs, int B, int T, int C, int NH);
void ref_rope_row(float* qkv, const float* cs, int t, int C, int NH);
void ref_encoder_forward(float* out, const int* inp, const float* wte, const float* pe, float embed_scale,
                         float drop_p, uint64_t drop_key, int B, int T, int C);
void ref_encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, float embed_scale,
                          float drop_p, uint64_t drop_key, int B, int T, int C);

void ref_gelu_forward(float* out, const float* inp, long N);
void ref_gelu_backward(float* dinp, const float* inp, const float* dout, long N);

float ref_crossentropy_forward(float* stats, float* losses, const float* logits, const int* targets, int N, int V);
void ref_crossentropy_backward(float* dlogits, const float* logits, const float* stats, const int* targets,
                               int N, int V, int batch_rows);

uint64_t ref_dropout_key(uint64_t seed, long step, int layer, DropoutSite site);
void ref_dropout_forward(float* x, size_t N, float p, uint64_t key);
void ref_dropout_backward(float* dx, size_t N, float p, uint64_t key);

#endif
