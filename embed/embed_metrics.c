/* embed_metrics.c: measurements of E (see embed_metrics.h). All in double; E is small
 * (V x C), so clarity wins over speed here. Not here: when to measure (train.c). */
#include "embed/embed_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/utils.h"

TokenClass byte_class(unsigned char b) {
    if (b >= 'A' && b <= 'Z') return CLASS_UPPER;
    if (b >= 'a' && b <= 'z') return strchr("aeiou", b) ? CLASS_VOWEL : CLASS_CONSONANT;
    if (b >= '0' && b <= '9') return CLASS_DIGIT;
    if (b == ' ' || b == '\n' || b == '\t' || b == '\r') return CLASS_SPACE;
    if (b > ' ' && b < 127) return CLASS_PUNCT;  /* printable ASCII that is none of the above */
    return CLASS_NONE;
}

static double row_norm(const float* e, int C) {
    double s = 0.0;
    for (int c = 0; c < C; c++) s += (double)e[c] * e[c];
    return sqrt(s);
}

double mean_pairwise_cosine(const float* E, int V, int C) {
    /* sum over i != j of u_i . u_j = |sum_i u_i|^2 - sum_i |u_i|^2, u_i = e_i / |e_i| */
    double* sum = xcalloc((size_t)C, sizeof(double), "cosine sum");
    int n = 0;
    for (int i = 0; i < V; i++) {
        double norm = row_norm(E + (size_t)i * C, C);
        if (norm == 0.0) continue;  /* a zero row has no direction */
        for (int c = 0; c < C; c++) sum[c] += E[(size_t)i * C + c] / norm;
        n++;
    }
    double s2 = 0.0;
    for (int c = 0; c < C; c++) s2 += sum[c] * sum[c];
    free(sum);
    return n > 1 ? (s2 - n) / ((double)n * (n - 1)) : NAN;
}

/* Eigenvalues of the symmetric n x n matrix a (destroyed) by cyclic Jacobi rotations;
 * with vec (n x n) non-NULL, also the eigenvectors, as its columns. */
static void symmetric_eigen(double* a, int n, double* eig, double* vec) {
    if (vec)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) vec[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++) *(p == q ? &diag : &off) += a[p * n + q] * a[p * n + q];
        if (off <= 1e-24 * (diag + 1e-300)) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0) continue;
                /* the rotation that zeroes a[p][q]: t = tan(theta) */
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) {  /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {  /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                if (vec)
                    for (int k = 0; k < n; k++) {  /* accumulate the rotation */
                        double vkp = vec[k * n + p], vkq = vec[k * n + q];
                        vec[k * n + p] = c * vkp - s * vkq;
                        vec[k * n + q] = s * vkp + c * vkq;
                    }
            }
    }
    for (int i = 0; i < n; i++) eig[i] = a[i * n + i];
}

double effective_rank(const float* E, int V, int C) {
    /* sigma_k^2 are the eigenvalues of the smaller Gram matrix, E^T E (C x C) or E E^T (V x V) */
    int n = V < C ? V : C;
    double* g = xcalloc((size_t)n * n, sizeof(double), "gram matrix");
    double* eig = xmalloc((size_t)n * sizeof(double), "eigenvalues");
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.0;
            if (V < C) for (int c = 0; c < C; c++) s += (double)E[(size_t)i * C + c] * E[(size_t)j * C + c];
            else for (int v = 0; v < V; v++) s += (double)E[(size_t)v * C + i] * E[(size_t)v * C + j];
            g[i * n + j] = g[j * n + i] = s;
        }
    symmetric_eigen(g, n, eig, NULL);
    double total = 0.0, entropy = 0.0;
    for (int i = 0; i < n; i++) { eig[i] = eig[i] > 0 ? sqrt(eig[i]) : 0.0; total += eig[i]; }
    for (int i = 0; i < n && total > 0; i++) {
        double p = eig[i] / total;
        if (p > 1e-12) entropy -= p * log(p);
    }
    free(g);
    free(eig);
    return total > 0 ? exp(entropy) : 0.0;
}

static const double* sort_key;
static int by_key(const void* a, const void* b) {
    double x = sort_key[*(const int*)a], y = sort_key[*(const int*)b];
    return (x > y) - (x < y);
}

/* Ranks 1..n, ties sharing their mean rank. */
static void ranks(const double* x, int n, double* r) {
    int* idx = xmalloc((size_t)n * sizeof(int), "ranks");
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_key = x;
    qsort(idx, (size_t)n, sizeof(int), by_key);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) j++;
        for (int k = i; k <= j; k++) r[idx[k]] = (i + j) / 2.0 + 1.0;
        i = j + 1;
    }
    free(idx);
}

double spearman(const double* x, const double* y, int n) {
    double* rx = xmalloc((size_t)n * sizeof(double), "ranks");
    double* ry = xmalloc((size_t)n * sizeof(double), "ranks");
    ranks(x, n, rx);
    ranks(y, n, ry);
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) { mx += rx[i] / n; my += ry[i] / n; }
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

int nearest_rows(const float* E, int V, int C, const float* query, int skip, int k, int* ids, float* scores) {
    double qn = row_norm(query, C);
    int found = 0;
    for (int v = 0; v < V; v++) {
        if (v == skip) continue;
        double n = row_norm(E + (size_t)v * C, C), dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)query[c] * E[(size_t)v * C + c];
        float cos = (float)(qn > 0 && n > 0 ? dot / (qn * n) : 0.0);
        /* insertion into the sorted top k; ties keep the lower id first */
        int pos = found < k ? found : k;
        while (pos > 0 && scores[pos - 1] < cos) pos--;
        if (pos >= k) continue;
        int last = found < k ? found : k - 1;
        for (int j = last; j > pos; j--) { ids[j] = ids[j - 1]; scores[j] = scores[j - 1]; }
        ids[pos] = v;
        scores[pos] = cos;
        if (found < k) found++;
    }
    return found;
}

void embedding_stats(const float* E, int V, int C, const double* freq, const int* classes, int k,
                     EmbeddingStats* out) {
    double* norms = xmalloc((size_t)V * sizeof(double), "norms");
    double sum = 0.0, sq = 0.0;
    for (int v = 0; v < V; v++) {
        norms[v] = row_norm(E + (size_t)v * C, C);
        sum += norms[v];
        sq += norms[v] * norms[v];
    }
    out->norm_mean = sum / V;
    out->norm_std = sqrt(fmax(sq / V - out->norm_mean * out->norm_mean, 0.0));
    out->norm_freq_spearman = freq ? spearman(norms, freq, V) : NAN;
    out->mean_cosine = mean_pairwise_cosine(E, V, C);
    out->effective_rank = effective_rank(E, V, C);
    out->knn_purity = NAN;
    if (classes && k > 0) {
        int* ids = xmalloc((size_t)k * sizeof(int), "neighbours");
        float* scores = xmalloc((size_t)k * sizeof(float), "neighbour scores");
        double total = 0.0;
        int counted = 0;
        for (int v = 0; v < V; v++) {
            if (classes[v] == CLASS_NONE) continue;
            int n = nearest_rows(E, V, C, E + (size_t)v * C, v, k, ids, scores), same = 0;
            for (int j = 0; j < n; j++) same += classes[ids[j]] == classes[v];
            if (n > 0) { total += (double)same / n; counted++; }
        }
        out->knn_purity = counted ? total / counted : NAN;
        free(ids);
        free(scores);
    }
    free(norms);
}

double knn_chance_purity(const int* classes, int V) {
    /* a random neighbour of v shares its class with probability (n_c - 1) / (N - 1) */
    int counts[NUM_CLASSES] = {0}, N = 0;
    for (int v = 0; v < V; v++)
        if (classes[v] != CLASS_NONE) { counts[classes[v]]++; N++; }
    double total = 0.0;
    for (int c = 0; c < NUM_CLASSES; c++) total += counts[c] * (counts[c] - 1.0) / (N - 1.0);
    return N > 1 ? total / N : NAN;
}

void pca_basis(const float* E, int V, int C, int dims, double* mean, double* basis) {
    double* cov = xcalloc((size_t)C * C, sizeof(double), "covariance");
    double* vec = xmalloc((size_t)C * C * sizeof(double), "eigenvectors");
    double* eig = xmalloc((size_t)C * sizeof(double), "eigenvalues");
    for (int c = 0; c < C; c++) {
        mean[c] = 0.0;
        for (int v = 0; v < V; v++) mean[c] += E[(size_t)v * C + c] / (double)V;
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.0;
            for (int v = 0; v < V; v++) s += (E[(size_t)v * C + i] - mean[i]) * (E[(size_t)v * C + j] - mean[j]);
            cov[i * C + j] = cov[j * C + i] = s / V;
        }
    symmetric_eigen(cov, C, eig, vec);
    /* the dims eigenvectors of largest eigenvalue, each signed so its largest entry is positive */
    int* used = xcalloc((size_t)C, sizeof(int), "pca");
    for (int d = 0; d < dims; d++) {
        int best = -1;
        for (int k = 0; k < C; k++)
            if (!used[k] && (best < 0 || eig[k] > eig[best])) best = k;
        used[best] = 1;
        int big = 0;
        for (int c = 1; c < C; c++)
            if (fabs(vec[c * C + best]) > fabs(vec[big * C + best])) big = c;
        double sign = vec[big * C + best] < 0 ? -1.0 : 1.0;
        for (int c = 0; c < C; c++) basis[(size_t)d * C + c] = sign * vec[c * C + best];
    }
    free(used);
    free(cov);
    free(vec);
    free(eig);
}
