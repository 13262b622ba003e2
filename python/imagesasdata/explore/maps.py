"""Looking at a corpus through its embeddings: a 2-D map (PCA always; UMAP when umap-learn is installed), clusters
(k-means) and nearest neighbours. Tables in, tables out; no torch.

Vectors are compared by direction (cosine): CNN features differ in length with contrast and size more than with
content, so clusters, neighbours and UMAP use unit-length vectors. PCA keeps the vectors as they are, centred.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, setting
from .vectors import embedding_matrix, optional_column, unit_rows

MAP_METHODS = ("pca", "umap")


def embedding_map(embeddings, method: str = "pca", *, seed: int = 0, n_neighbors: int = 15,
                  min_dist: float = 0.1) -> pa.Table:
    """Every image as a point on a 2-D map, similar images close together.

    method: "pca" (the two directions of largest variance; signs fixed so that the same data give the same map on
      any machine) or "umap" (neighbourhoods kept; needs the package umap-learn; seed makes it repeatable).
    n_neighbors, min_dist: UMAP's options (its defaults).
    Returns image_id, path, x, y, method. Raises ImagesAsDataError for unknown methods, too few images, or images
    without embeddings.
    """
    method = str(method).lower()
    if method not in MAP_METHODS:
        raise ImagesAsDataError(f"{setting('method', method)}: choose 'pca' or 'umap'.{did_you_mean(method, MAP_METHODS)}",
                                what="option", option="method", value=method)
    table, matrix = embedding_matrix(embeddings)
    if matrix.shape[0] < 3:
        raise ImagesAsDataError(f"a map needs at least 3 images with embeddings; these are {matrix.shape[0]}")
    if method == "pca":
        points = pca_scores(matrix, 2)
    else:
        points = _umap(matrix, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    return pa.table({"image_id": table["image_id"], "path": optional_column(table, "path"),
                     "x": pa.array(points[:, 0], pa.float64()), "y": pa.array(points[:, 1], pa.float64()),
                     "method": pa.array([method] * table.num_rows, pa.string())})


def pca_scores(matrix: np.ndarray, components: int = 2) -> np.ndarray:
    """Scores on the first principal components (SVD of the centred matrix). Each component's sign is fixed so
    that its largest loading is positive: SVD routines may return either sign, and the map must not mirror
    between machines."""
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(components, vt.shape[0])
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    scores = centred @ (vt * signs[:, None]).T
    if k < components:   # fewer directions than asked (e.g. identical images): pad with zeros
        scores = np.hstack([scores, np.zeros((scores.shape[0], components - k))])
    return scores


def _umap(matrix: np.ndarray, *, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise ImagesAsDataError("method='umap' needs the package umap-learn: pip install 'imagesasdata[inside]' (or "
                                "pip install umap-learn); method='pca' needs nothing more", what="missing_extra", extra="inside") from None
    vectors = unit_rows(matrix)
    if vectors.shape[1] > 50 and vectors.shape[0] > 50:   # the usual first step: PCA to 50 dimensions
        vectors = pca_scores(vectors, 50)
    neighbours = int(max(2, min(int(n_neighbors), vectors.shape[0] - 1)))
    # A seed makes UMAP repeatable and single-threaded (n_jobs=1, said explicitly to spare the user its warning).
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=float(min_dist), random_state=int(seed),
                        n_jobs=1, init="spectral" if vectors.shape[0] > neighbours + 2 else "random")
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float64)


def embedding_clusters(embeddings, k: int, *, seed: int = 0, n_init: int = 10) -> pa.Table:
    """Group images by k-means on their (unit-length) embeddings.

    Clusters are numbered 1…k from the largest to the smallest. Returns image_id, path, cluster, cluster_size,
    distance (to the cluster's centre) and rank (1 = the image nearest the centre: the cluster's most typical
    image), sorted by cluster and rank — the order contact sheets show them in.
    Raises ImagesAsDataError when k is not between 1 and the number of images, or images have no embedding.
    """
    from sklearn.cluster import KMeans

    table, matrix = embedding_matrix(embeddings)
    n = matrix.shape[0]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= int(k) <= n:
        raise ImagesAsDataError(f"{setting('k', k)}: the number of clusters must be a whole number from 1 to the number of "
                                f"images ({n})", what="option", option="k", value=k)
    vectors = unit_rows(matrix)
    model = KMeans(n_clusters=int(k), n_init=int(n_init), random_state=int(seed)).fit(vectors)
    labels = model.labels_
    distance = np.linalg.norm(vectors - model.cluster_centers_[labels], axis=1)
    sizes = np.bincount(labels, minlength=int(k))
    order_of_cluster = sorted(range(int(k)), key=lambda c: (-sizes[c], c))
    number = {c: i + 1 for i, c in enumerate(order_of_cluster)}
    cluster = np.array([number[c] for c in labels])
    rank = np.zeros(n, np.int64)
    for c in range(int(k)):
        members = np.flatnonzero(labels == c)
        rank[members[np.argsort(distance[members], kind="stable")]] = np.arange(1, len(members) + 1)
    order = np.lexsort((rank, cluster))
    result = pa.table({
        "image_id": table["image_id"], "path": optional_column(table, "path"),
        "cluster": pa.array(cluster, pa.int32()), "cluster_size": pa.array(sizes[labels], pa.int32()),
        "distance": pa.array(distance, pa.float64()), "rank": pa.array(rank, pa.int32()),
    })
    return result.take(pa.array(order, pa.int64()))


def nearest_images(embeddings, images=None, *, k: int = 5) -> pa.Table:
    """The k most similar images (cosine similarity of the embeddings) of each image in `images` (image ids; None:
    every image), the image itself left out.

    Returns image_id, neighbour_id, neighbour_path, rank (1 = most similar) and similarity (−1 to 1).
    Raises ImagesAsDataError for image ids that are not in the embeddings, or images without embeddings.
    """
    table, matrix = embedding_matrix(embeddings)
    ids = [str(v) for v in table["image_id"].to_pylist()]
    n = len(ids)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= int(k) <= max(1, n - 1):
        raise ImagesAsDataError(f"{setting('k', k)}: ask for 1 to {max(1, n - 1)} neighbours (the images there are, less one)",
                                what="option", option="k", value=k)
    k = int(k)
    position = {image_id: i for i, image_id in enumerate(ids)}
    if images is None:
        queries = list(range(n))
    else:
        wanted = [images] if isinstance(images, str) else [str(v) for v in images]
        unknown = [w for w in wanted if w not in position]
        if unknown:
            raise ImagesAsDataError(f"image id(s) {listing([repr(u) for u in unknown])} are not in the embeddings "
                                    f"(ids look like {listing(ids, 3)}).{did_you_mean(unknown[0], ids)}")
        queries = [position[w] for w in wanted]
    vectors = unit_rows(matrix)
    paths = optional_column(table, "path").to_pylist()
    rows = {"image_id": [], "neighbour_id": [], "neighbour_path": [], "rank": [], "similarity": []}
    for start in range(0, len(queries), 512):   # blocks of 512 queries: memory stays small for large corpora
        block = queries[start:start + 512]
        similarity = vectors[block] @ vectors.T
        similarity[np.arange(len(block)), block] = -np.inf   # never one's own neighbour
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        for q, neighbours in zip(block, nearest):
            for r, j in enumerate(neighbours, start=1):
                rows["image_id"].append(ids[q])
                rows["neighbour_id"].append(ids[j])
                rows["neighbour_path"].append(paths[j])
                rows["rank"].append(r)
                rows["similarity"].append(float(vectors[q] @ vectors[j]))
    return pa.table({"image_id": pa.array(rows["image_id"], pa.string()),
                     "neighbour_id": pa.array(rows["neighbour_id"], pa.string()),
                     "neighbour_path": pa.array(rows["neighbour_path"], pa.string()),
                     "rank": pa.array(rows["rank"], pa.int32()),
                     "similarity": pa.array(rows["similarity"], pa.float64())})
