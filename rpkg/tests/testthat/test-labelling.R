# label_corpus(): resumable Parquet shards, the same answers as predict(), here and on a local Ray cluster.

test_that("a corpus is labelled into shards with predict()'s answers, and a rerun resumes", {
  trains()
  fit <- faces_fit()
  images <- c(sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE)), broken_image())
  out <- tempfile("labelling")
  job <- label_corpus(fit, images, out = out, shard_size = 5L, max_shards = 2L)
  expect_s3_class(job, "cnn_labelling")
  expect_identical(c(job$images, job$shards, job$shards_done, job$labelled), c(13L, 3L, 2L, 10L))
  expect_false(job$complete)
  expect_output(print(job), "run label_corpus\\(\\) again to finish")

  again <- label_corpus(fit, images, out = out, shard_size = 5L)
  expect_identical(c(again$labelled, again$shards_done), c(3L, 3L))   # only the missing shard was labelled
  expect_true(again$complete)

  expect_warning(labels <- labelled_images(again), class = "imagesasdata_warning_unreadable")
  expect_warning(direct <- predict(fit, images, type = "prob"), class = "imagesasdata_warning_unreadable")
  expect_identical(names(labels), names(direct))
  expect_identical(labels$path, direct$path)
  expect_identical(levels(labels$.pred_class), fit$classes)
  expect_identical(as.character(labels$.pred_class), as.character(direct$.pred_class))
  expect_equal(labels$.pred_s1, direct$.pred_s1, tolerance = 1e-6)
  expect_true(is.na(labels$.pred_class[13]) && grepl("not an image", labels$error[13]))
  expect_identical(suppressWarnings(labelled_images(out))$image_id, labels$image_id)   # by path too
})

test_that("backend = 'ray' gives the local answers, and the labelling says where its work ran", {
  trains()
  fit <- faces_fit()
  images <- sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE))
  on_ray <- predict(fit, images, type = "prob", backend = "ray")
  here <- predict(fit, images, type = "prob")
  expect_identical(as.character(on_ray$.pred_class), as.character(here$.pred_class))
  expect_equal(on_ray$.pred_s2, here$.pred_s2, tolerance = 1e-5)

  # one small labelling on the Ray session predict() started (one node here: tests/test_cluster.py has two)
  job <- label_corpus(fit, images, out = tempfile("labelling"), backend = "ray", shard_size = 5L, replicas = 1L)
  nodes <- py_json("sorted(n['NodeManagerAddress'] for n in __import__('ray').nodes() if n['Alive'])")
  recorded <- py_json(sprintf("__import__('json').load(open(%s))['last_call']['cluster']",
                              shQuote(file.path(job$path, "labelling.json"))))
  expect_identical(job$cluster$nodes, nodes)
  expect_identical(job$cluster$workers, 1L)
  expect_identical(job$cluster$by_node, tibble::tibble(node = nodes, images = 12L))
  expect_identical(job$cluster$by_node$images, as.integer(unlist(recorded$images_by_node)))   # the engine's record
  expect_identical(c(job$cluster$nodes_lost, job$cluster$retried), character())
  printed <- capture.output(print(job))
  expect_true("  on Ray: 1 node, 1 model replica" %in% printed)
  expect_true(sprintf("    %s: 12 images", nodes) %in% printed)
  expect_false(any(grepl("left the cluster|retried", printed)))
  summary <- glance(job)
  expect_identical(unlist(summary[c("nodes", "workers", "nodes_used", "nodes_lost", "retried")]),
                   c(nodes = 1L, workers = 1L, nodes_used = 1L, nodes_lost = 0L, retried = 0L))
  expect_identical(summary$backend, "ray")
  expect_identical(summary$images, 12L)
  expect_identical(suppressWarnings(labelled_images(job))$.pred_class, here$.pred_class)

  # a local labelling has no cluster: NA in glance(), nothing printed about Ray
  local <- label_corpus(fit, images[1:3], out = tempfile("labelling"))
  expect_null(local$cluster)
  expect_true(all(is.na(unlist(glance(local)[c("nodes", "workers", "nodes_used", "nodes_lost", "retried")]))))
  expect_false(any(grepl("on Ray", capture.output(print(local)))))
})

test_that("a node lost on Ray is shown with what was run again", {
  skip_if_no_engine()
  # The records the engine keeps after a node loss (tests/test_cluster.py makes them on a real two-node cluster):
  # labelling.json's last_call.cluster, and a grid's ClusterWork.
  reticulate::py_run_string(paste(
    "import types",
    "from imagesasdata.scale.cluster import ClusterWork",
    "labelled = types.SimpleNamespace(cluster={'nodes': ['10.0.3.16', '10.0.3.17'], 'replicas': 2,",
    "    'images_by_node': {'10.0.3.16': 45, '10.0.3.17': 16}, 'nodes_lost': ['10.0.3.17'],",
    "    'retried': ['the batches in flight on 10.0.3.17, labelled again on the other nodes']})",
    "grid = types.SimpleNamespace(cluster=ClusterWork({'10.0.3.16': 2}, ['10.0.3.17'],",
    "    ['config_002 on 10.0.3.17: its worker process was lost (Ray: The actor is unavailable)'],",
    "    ['10.0.3.16', '10.0.3.17'], 2))",
    sep = "\n"), convert = FALSE)
  main <- reticulate::import_main(convert = FALSE)
  labelled <- imagesasdata:::cluster_object(main$labelled)
  expect_identical(labelled$by_node, tibble::tibble(node = c("10.0.3.16", "10.0.3.17"), images = c(45L, 16L)))
  expect_identical(imagesasdata:::cluster_lines(labelled), c(
    "  on Ray: 2 nodes, 2 model replicas", "    10.0.3.16: 45 images", "    10.0.3.17: 16 images",
    "  node 10.0.3.17 left the cluster during the job",
    "  retried: the batches in flight on 10.0.3.17, labelled again on the other nodes"))
  grid <- imagesasdata:::cluster_object(main$grid)
  expect_identical(grid$by_node, tibble::tibble(node = "10.0.3.16", trials = 2L))
  expect_identical(imagesasdata:::cluster_lines(grid, "grid", "; run again, it resumed from its last finished epoch"), c(
    "  on Ray: 2 nodes, 2 trials", "    10.0.3.16: 2 trials", "  node 10.0.3.17 left the cluster during the grid",
    paste0("  retried: config_002 on 10.0.3.17: its worker process was lost (Ray: The actor is unavailable); ",
           "run again, it resumed from its last finished epoch")))
})

test_that("bad labelling arguments are R errors naming the argument", {
  trains()
  fit <- faces_fit()
  expect_error(label_corpus(fit, "x", out = tempfile(), shard_size = 2.5), "`shard_size` must be a whole number")
  expect_error(label_corpus(fit, "x", out = tempfile(), backend = "slurm"), class = "imagesasdata_argument_error",
               "`backend` must be one of \"local\" or \"ray\", not \"slurm\"")
  expect_error(label_corpus("not a fit", "x", out = tempfile()), "must be a cnn_fit")
})

test_that("out = 's3://...' from R: label_corpus() writes the shards there and labelled_images() reads them back", {
  trains()
  skip_if_not(reticulate::py_module_available("moto"), "moto (a local S3 server) is not installed")
  fit <- faces_fit()
  images <- sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE))[1:6]
  # A real S3 endpoint on 127.0.0.1 (moto in server mode) and fake credentials in Python's own environment (boto3
  # reads os.environ, which R's Sys.setenv() does not reach once Python runs), restored afterwards.
  reticulate::py_run_string(paste(
    "import logging, os",
    "from moto.server import ThreadedMotoServer",
    "from imagesasdata.io import s3 as _s3",
    "logging.getLogger('werkzeug').setLevel(logging.ERROR)",
    "_aws = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',",
    "        'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_CONFIG_FILE': '/nonexistent', 'AWS_SHARED_CREDENTIALS_FILE':",
    "        '/nonexistent', 'AWS_PROFILE': None, 'AWS_SESSION_TOKEN': None, 'AWS_ENDPOINT_URL': None,",
    "        'AWS_ENDPOINT_URL_S3': None}",
    "_aws_before = {k: os.environ.get(k) for k in _aws}",
    "for k, v in _aws.items():",
    "    os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)",
    "_moto = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)",
    "_moto.start()",
    "moto_endpoint = 'http://%s:%d' % _moto.get_host_and_port()",
    "import boto3",
    "boto3.client('s3', endpoint_url=moto_endpoint).create_bucket(Bucket='r-labels')",
    sep = "\n"))
  withr::defer(reticulate::py_run_string(paste(
    "_moto.stop()",
    "for k, v in _aws_before.items():",
    "    os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)",
    "_s3._clients.clear()", sep = "\n")))
  endpoint <- reticulate::py_eval("moto_endpoint")
  job <- label_corpus(fit, images, out = "s3://r-labels/faces", endpoint_url = endpoint, shard_size = 4L)
  expect_identical(c(job$path, job$endpoint_url), c("s3://r-labels/faces", endpoint))
  expect_identical(c(job$images, job$shards_done, job$labelled), c(6L, 2L, 6L))
  keys <- py_json(sprintf(paste0("sorted(o['Key'] for o in __import__('boto3').client('s3', endpoint_url=%s)",
                                 ".list_objects_v2(Bucket='r-labels')['Contents'])"), shQuote(endpoint)))
  expect_identical(keys, c("faces/.imagesasdata.lock", "faces/labelling.json", "faces/manifest.parquet",
                           "faces/shards/shard-000000.parquet", "faces/shards/shard-000001.parquet"))
  labels <- labelled_images(job)
  direct <- predict(fit, images, type = "prob")
  expect_identical(labels$path, direct$path)
  expect_identical(as.character(labels$.pred_class), as.character(direct$.pred_class))
  expect_equal(labels$.pred_s1, direct$.pred_s1, tolerance = 1e-6)
  by_prefix <- labelled_images("s3://r-labels/faces", classes = fit$classes, endpoint_url = endpoint)
  expect_identical(by_prefix, labels)   # by its prefix too
})
