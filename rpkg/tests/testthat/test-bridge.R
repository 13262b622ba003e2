# The conversion every wrapper relies on: exact types, NA for None, factors, zero rows, both directions.

make_table <- function(code) {
  skip_if_no_engine()
  reticulate::py_run_string(paste0("import pyarrow as pa, datetime as dt\n_t = ", code), convert = FALSE)
  reticulate::import_main(convert = FALSE)[["_t"]]
}

ALL_TYPES <- "pa.table({
  'i': pa.array([1, None, -3], pa.int64()),
  'i8': pa.array([None, 2, 3], pa.int8()),
  'wide': pa.array([1, 2**40, None], pa.int64()),
  'f': pa.array([1.5, None, float('nan')]),
  'f32': pa.array([0.25, -1.0, None], pa.float32()),
  's': pa.array(['a', None, 'NA']),
  'b': pa.array([True, None, False]),
  'none': pa.array([None, None, None], pa.null()),
  'd': pa.array(['x', 'y', None]).dictionary_encode(),
  'day': pa.array([dt.date(2020, 1, 2), None, dt.date(1969, 12, 31)]),
  'when': pa.array([dt.datetime(2020, 1, 1, 12), None, dt.datetime(1970, 1, 1)], pa.timestamp('ms', 'UTC')),
  'tags': pa.array([['a', 'b'], None, []], pa.list_(pa.string())),
  'box': pa.array([{'n': 1, 'w': 'x'}, None, {'n': None, 'w': 'z'}]),
})"

test_that("every Arrow type arrives with its R type and NA where the engine had None", {
  tb <- as_tibble_engine(make_table(ALL_TYPES))
  expect_s3_class(tb, "tbl_df")
  expect_equal(nrow(tb), 3)
  expect_identical(names(tb), c("i", "i8", "wide", "f", "f32", "s", "b", "none", "d", "day", "when", "tags", "box"))
  expect_identical(tb$i, c(1L, NA, -3L))
  expect_identical(tb$i8, c(NA, 2L, 3L))
  expect_identical(tb$wide, c(1, 2^40, NA))                # wider than R's integer: double, value intact
  expect_identical(tb$f, c(1.5, NA, NaN))                  # NaN stays NaN, null becomes NA
  expect_true(is.na(tb$f[2]) && !is.nan(tb$f[2]))
  expect_identical(tb$f32, c(0.25, -1, NA))
  expect_identical(tb$s, c("a", NA, "NA"))                 # the string "NA" is not missing
  expect_identical(tb$b, c(TRUE, NA, FALSE))
  expect_identical(tb$none, c(NA, NA, NA))
  expect_identical(tb$d, factor(c("x", "y", NA), levels = c("x", "y")))
  expect_identical(tb$day, as.Date(c("2020-01-02", NA, "1969-12-31")))
  expect_identical(format(tb$when, "%Y-%m-%d %H:%M:%S", tz = "UTC"), c("2020-01-01 12:00:00", NA, "1970-01-01 00:00:00"))
  expect_identical(attr(tb$when, "tzone"), "UTC")
  expect_identical(tb$tags, list(c("a", "b"), NULL, character()))
  expect_s3_class(tb$box, "tbl_df")
  expect_identical(tb$box$n, c(1L, NA, NA))
  expect_identical(tb$box$w, c("x", NA, "z"))
})

test_that("zero-row tables keep their columns and types", {
  tb <- as_tibble_engine(make_table(paste0(ALL_TYPES, ".slice(0, 0)")), factors = "s", levels = c("b", "a"))
  expect_equal(nrow(tb), 0)
  expect_identical(names(tb), c("i", "i8", "wide", "f", "f32", "s", "b", "none", "d", "day", "when", "tags", "box"))
  expect_identical(tb$i, integer())
  expect_identical(tb$f, double())
  expect_identical(tb$s, factor(character(), levels = c("b", "a")))
  expect_identical(tb$b, logical())
  expect_identical(tb$d, factor(character(), levels = c("x", "y")))
  expect_s3_class(tb$day, "Date")
  expect_s3_class(tb$when, "POSIXct")
  expect_identical(tb$tags, list())
  expect_identical(names(tb$box), c("n", "w"))
})

test_that("a sliced table converts its own rows, not the rows behind the slice", {
  tb <- as_tibble_engine(make_table(paste0(ALL_TYPES, ".slice(1, 2)")))
  expect_identical(tb$i, c(NA, -3L))
  expect_identical(tb$tags, list(NULL, character()))
  expect_identical(tb$box$w, c(NA, "z"))
})

test_that("factors take the level order given, natural order otherwise, and never lose a value", {
  t <- make_table("pa.table({'label': ['s10', 's2', None, 's1'], 'other': ['b', 'a', 'b', 'a']})")
  natural <- as_tibble_engine(t, factors = c("label", "missing_column"))
  expect_identical(levels(natural$label), c("s1", "s2", "s10"))
  expect_identical(as.character(natural$label), c("s10", "s2", NA, "s1"))
  expect_type(natural$other, "character")
  given <- as_tibble_engine(t, factors = "label", levels = c("s2", "s1"))
  expect_identical(levels(given$label), c("s2", "s1", "s10"))   # s10 was not among the levels: added, not NA
  expect_identical(as.character(given$label), c("s10", "s2", NA, "s1"))
})

test_that("a large table arrives whole and exact", {
  t <- make_table("pa.table({'k': list(range(20000)), 'x': [i / 7 for i in range(20000)], 's': [str(i) if i % 3 else None for i in range(20000)]})")
  tb <- as_tibble_engine(t)
  expect_identical(tb$k, 0:19999)
  expect_identical(tb$x, (0:19999) / 7)
  expect_identical(is.na(tb$s), (0:19999) %% 3 == 0)
  expect_identical(tb$s[2], "1")
})

test_that("data frames reach the engine with their types and NA as null", {
  skip_if_no_engine()
  df <- tibble::tibble(
    n = c(1L, NA, 3L), x = c(0.5, NA, NaN), s = c("a", NA, "NA"), b = c(NA, TRUE, FALSE),
    f = factor(c("u", NA, "v")), day = as.Date(c("2021-03-04", NA, "1960-01-01")),
    when = as.POSIXct(c("2021-03-04 05:06:07", NA, "1970-01-01 00:00:00"), tz = "UTC")
  )
  arrow <- engine_table(df)
  types <- reticulate::py_to_r(reticulate::py_call(reticulate::py_eval("lambda t: [str(f.type) for f in t.schema]", convert = FALSE), arrow))
  expect_identical(types, c("int32", "double", "string", "bool", "string", "date32[day]", "timestamp[us, tz=UTC]"))
  reticulate::py_run_string("import math", convert = FALSE)
  rows <- reticulate::py_to_r(reticulate::py_call(reticulate::py_eval(
    "lambda t: [[None if v is None else ('NaN' if isinstance(v, float) and math.isnan(v) else str(v)) for v in c.to_pylist()] for c in t.columns]",
    convert = FALSE
  ), arrow))
  expect_identical(unlist(lapply(rows[[1]], function(v) v %||% "None")), c("1", "None", "3"))
  expect_identical(unlist(lapply(rows[[2]], function(v) v %||% "None")), c("0.5", "None", "NaN"))
  expect_identical(unlist(lapply(rows[[3]], function(v) v %||% "None")), c("a", "None", "NA"))
  expect_identical(unlist(lapply(rows[[4]], function(v) v %||% "None")), c("None", "True", "False"))
  expect_identical(unlist(lapply(rows[[5]], function(v) v %||% "None")), c("u", "None", "v"))
  expect_identical(unlist(lapply(rows[[6]], function(v) v %||% "None")), c("2021-03-04", "None", "1960-01-01"))
  expect_identical(unlist(lapply(rows[[7]], function(v) v %||% "None")),
                   c("2021-03-04 05:06:07+00:00", "None", "1970-01-01 00:00:00+00:00"))
  # and back again, unchanged
  back <- as_tibble_engine(arrow, factors = "f")
  expect_identical(back$n, df$n)
  expect_identical(back$x, df$x)
  expect_identical(back$s, df$s)
  expect_identical(back$b, df$b)
  expect_identical(back$f, df$f)
  expect_identical(back$day, df$day)
  expect_equal(as.numeric(back$when), as.numeric(df$when))
})

test_that("zero-row and one-row data frames reach the engine with their columns", {
  skip_if_no_engine()
  empty <- engine_table(tibble::tibble(path = character(), n = integer()))
  expect_identical(reticulate::py_to_r(empty$num_rows), 0L)
  expect_identical(reticulate::py_to_r(empty$column_names), c("path", "n"))
  one <- engine_table(data.frame(path = "a.png", n = 2L))
  expect_identical(reticulate::py_to_r(one$column("path")$to_pylist()), "a.png")
  expect_identical(reticulate::py_to_r(one$column("n")$to_pylist()), 2L)
})

test_that("named vectors in a data frame reach the engine as their values, names dropped", {
  skip_if_no_engine()
  frame <- tibble::tibble(path = c(first = "a.png", second = "b.png", third = NA), n = c(a = 1L, b = NA, c = 3L),
                          x = c(a = 0.5, b = NA, c = 2), ok = c(a = TRUE, b = NA, c = FALSE),
                          f = stats::setNames(factor(c("u", NA, "v")), c("a", "b", "c")))
  frame$scored <- sapply(c(a = 1, b = 2, c = 3), function(v) v / 2)   # sapply()'s named result
  expect_false(is.null(names(frame$n)))
  expect_false(is.null(names(frame$scored)))
  arrow <- engine_table(frame)
  values <- function(column) {
    reticulate::py_to_r(reticulate::py_call(reticulate::py_eval(
      "lambda t, c: [None if v is None else str(v) for v in t.column(c).to_pylist()]", convert = FALSE), arrow, column))
  }
  missing <- function(v) vapply(v, function(x) x %||% "None", character(1), USE.NAMES = FALSE)
  expect_identical(missing(values("path")), c("a.png", "b.png", "None"))
  expect_identical(missing(values("n")), c("1", "None", "3"))
  expect_identical(missing(values("x")), c("0.5", "None", "2.0"))
  expect_identical(missing(values("ok")), c("True", "None", "False"))
  expect_identical(missing(values("f")), c("u", "None", "v"))
  expect_identical(missing(values("scored")), c("0.5", "1.0", "1.5"))
  df <- data.frame(path = c("a.png", "b.png"))
  df$score <- c(first = 0.1, second = NA)                               # `$<-` keeps the names
  expect_identical(missing(reticulate::py_to_r(reticulate::py_call(reticulate::py_eval(
    "lambda t: [None if v is None else str(v) for v in t.column('score').to_pylist()]", convert = FALSE),
    engine_table(df)))), c("0.1", "None"))
})

test_that("list columns and other unsupported R types are refused with the column's name", {
  skip_if_no_engine()
  expect_error(engine_table(tibble::tibble(x = list(1, 2))), class = "imagesasdata_argument_error", regexp = "column `x`")
})

test_that("as_tibble_engine() and engine_table(), exported by 0.1.0, warn as deprecated when a user calls them", {
  skip_if_no_engine()
  withr::local_options(lifecycle_verbosity = "warning")
  user <- new.env(parent = globalenv())   # a user's code, outside the package
  frame <- data.frame(path = "a.png", n = 2L)
  expect_warning(table <- eval(quote(imagesasdata::engine_table(frame)), list(frame = frame), user),
                 class = "lifecycle_warning_deprecated", regexp = "engine_table\\(\\)")
  expect_warning(back <- eval(quote(imagesasdata::as_tibble_engine(table)), list(table = table), user),
                 class = "lifecycle_warning_deprecated", regexp = "as_tibble_engine\\(\\)")
  expect_identical(back$n, 2L)
  # the package's own calls (every wrapper's) never warn
  expect_warning(imagesasdata:::as_tibble_engine(imagesasdata:::engine_table(frame)), NA)
})
