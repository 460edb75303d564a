/* crossentropy.h: softmax over the vocabulary and the next-token loss, fused. */
#ifndef CROSSENTROPY_H
#define CROSSENTROPY_H

/* probs (N,V) = softmax(logits (N,V)); losses (N) = -log probs[n][targets[n]].
 * Returns the mean loss, summed in a fixed order. N = B*T. */
float crossentropy_forward(float* probs, float* losses, const float* logits,
                           const int* targets, int N, int V);

/* dlogits (N,V) = (probs - onehot(target)) / batch_rows: the gradient of the MEAN
 * loss over batch_rows rows, of which these N are all (batch_rows = N) or a part
 * (one group of a batch split into groups, gpt_forward_backward). */
void crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, int batch_rows);

#endif
