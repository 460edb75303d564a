/* explain.h: `./embeddings explain`, one training step of a tiny GPT told from E's
 * side, every number computed by the project's own kernels and model. */
#ifndef EMBED_EXPLAIN_H
#define EMBED_EXPLAIN_H

#include <stdio.h>

/* Print the worked example to f: a token id, its one-hot row times E equals the
 * lookup; positions added; the tied logits z = h E^T; the loss; which rows of dE
 * the lookup touches (sparse) and that the output projection touches all of them
 * (dense); E after one AdamW step. Every quantity is printed as a block
 *     NAME (R x C) =
 *       r rows of C numbers
 * (tests/test_explain.py parses them and recomputes each from the ones before).
 * digits: significant digits of the numbers (9 gives floats exactly). */
void explain_embeddings(FILE* f, int digits);

#endif
