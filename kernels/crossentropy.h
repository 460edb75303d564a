/* crossentropy.h: softmax over the vocabulary and the next-token loss, fused, with
 * the probabilities recomputed in the backward instead of kept (as attention does):
 * a row keeps two floats, not V. */
#ifndef CROSSENTROPY_H
#define CROSSENTROPY_H

/* losses (N) = -log softmax(logits (N,V))[targets[n]]; stats (N,2) = each row's
 * max logit and 1 / sum_v e^(z_v - max), from which the backward recomputes the
 * probabilities. Returns the mean loss, summed in a fixed order. N = B*T. */
float crossentropy_forward(float* stats, float* losses, const float* logits,
                           const int* targets, int N, int V);

/* dlogits (N,V) = (softmax(logits) - onehot(target)) / batch_rows: the gradient of
 * the MEAN loss over batch_rows rows, of which these N are all (batch_rows = N) or a
 * part (one group of a batch split into groups, gpt_forward_backward). */
void crossentropy_backward(float* dlogits, const float* logits, const float* stats, const int* targets,
                           int N, int V, int batch_rows);

#endif
