/* embed_metrics.h: measurements of the token embedding matrix E (V x C), to watch
 * structure emerge from random rows during training.
 *
 *   row norms          |e_i|: their mean and spread, and the Spearman rank
 *                      correlation of norm with the token's frequency in the data
 *   anisotropy         mean cosine similarity over all pairs of distinct rows
 *                      (near 0 for random rows; near 1 when the rows collapse)
 *   effective rank     exp(entropy of sigma_k / sum sigma), sigma the singular values
 *                      of E: 1 for rank one, C for a perfectly spread E
 *   k-NN class purity  for char/byte vocabularies: the fraction of each token's k
 *                      nearest rows (by cosine) that share its class (uppercase,
 *                      lowercase vowel, lowercase consonant, digit, punctuation,
 *                      whitespace), averaged over the tokens that have a class
 */
#ifndef EMBED_METRICS_H
#define EMBED_METRICS_H


typedef enum {
    CLASS_NONE = -1, CLASS_UPPER = 0, CLASS_VOWEL, CLASS_CONSONANT, CLASS_DIGIT, CLASS_PUNCT, CLASS_SPACE,
    NUM_CLASSES
} TokenClass;

/* The class of a one-byte token. */
TokenClass byte_class(unsigned char byte);

typedef struct {
    double norm_mean, norm_std;
    double norm_freq_spearman;  /* NAN without frequencies */
    double mean_cosine;
    double effective_rank;
    double knn_purity;          /* NAN without classes */
} EmbeddingStats;

/* All of the above. freq (V) token counts or NULL; classes (V) TokenClass or NULL. */
void embedding_stats(const float* E, int V, int C, const double* freq, const int* classes, int k,
                     EmbeddingStats* out);

double mean_pairwise_cosine(const float* E, int V, int C);
double effective_rank(const float* E, int V, int C);
/* Spearman's rank correlation of x and y (n values; ties get their mean rank). */
double spearman(const double* x, const double* y, int n);
/* The k rows nearest to `query` (C floats) by cosine, excluding row `skip` (or -1):
 * ids and scores in decreasing order of score. Returns how many were found. */
int nearest_rows(const float* E, int V, int C, const float* query, int skip, int k, int* ids, float* scores);

/* Expected k-NN purity when neighbours are drawn at random: the chance level. */
double knn_chance_purity(const int* classes, int V);
/* Principal components of E's rows: mean (C) and the dims leading directions,
 * basis (dims x C), each signed so its largest entry is positive. */
void pca_basis(const float* E, int V, int C, int dims, double* mean, double* basis);

#endif
