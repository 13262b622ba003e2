"""The corpus as a network sees it, without torch: image embeddings (infer.embeddings) as matrices, 2-D maps (PCA,
UMAP), clusters (k-means) with a contact sheet per cluster, nearest neighbours, and which images to label next
(uncertainty mixed with diversity) — the book's exploratory use of images (section 1.2) and its advice to spend the
coders' time well (section 5).
"""
