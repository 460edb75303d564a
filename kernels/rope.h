/* rope.h: rotary positions (RoPE, Su et al. 2021), on the queries and keys of
 * every head. Position t turns each pair (x_2i, x_2i+1) of a head's q and k by
 * the angle t * theta_i, theta_i = base^(-2i/hs):
 *   (x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin,  x_2i sin + x_2i+1 cos)
 * so q_s . k_t depends on the positions only through s - t. Values are not
 * turned, and nothing is added to the residual stream. */
#ifndef ROPE_H
#define ROPE_H

#define ROPE_BASE 10000.0

/* cs (T, hs/2, 2): cos and sin of t * theta_i, in double then rounded. hs even. */
void rope_table(float* cs, int T, int hs);

/* qkv (B*T, 3C), in place: the q and k parts of row (b,t) turned by position t.
 * cs: rope_table(.., T_max >= T, C/NH). */
void rope_forward(float* qkv, const float* cs, int B, int T, int C, int NH);

/* dqkv (B*T, 3C), in place: the gradient at the turned q and k turned back (the
 * rotation is orthogonal, its transpose its inverse), giving the gradient at the
 * q and k before rope_forward. The v part is untouched. */
void rope_backward(float* dqkv, const float* cs, int B, int T, int C, int NH);

/* One row at position t (generation): q = qkv[0..C), k = qkv[C..2C). */
void rope_row(float* qkv, const float* cs, int t, int C, int NH);

#endif
