# The one-time notices of the book's section 8 (the engine's notices.py): silencing them from R.

#' Silence the one-time notices of section 8
#'
#' The engine prints a notice the first time in a session that faces are identified ([classify_faces()],
#' [rekognition_celebrities()]) and that images are sent to a commercial tagger ([rekognition_labels()] and the
#' other Rekognition calls): what leaves the machine and what the provider documents about keeping it. The
#' results record the notice either way (the engine's tables carry it in their metadata).
#' `IMAGESASDATA_QUIET_NOTICES=all` in the environment silences them too.
#'
#' @param ... Which notices: `"face_identification"`, `"commercial_tagger"`; none for all.
#' @return `NULL`, invisibly.
#' @export
suppress_notices <- function(...) {
  kinds <- c(...)
  if (length(kinds) && (!is.character(kinds) || anyNA(kinds))) abort_argument("name notices as strings, e.g. \"face_identification\"")
  engine_call_list(engine()$suppress_notices, as.list(kinds))
  invisible(NULL)
}
