# Video as frames (the book's section 1.2): sample frames with PyAV, label them with a fit or the offline tagger,
# summarise per video, and draw the frames on a timeline. Mirrors python/imagesasdata/infer/video.py and
# measure/video.py.

#' Sample frames from videos
#'
#' Every `every` seconds, and/or at each scene change, a frame is written as a JPEG file with its timestamp. A
#' video that cannot be read is a row with its error; one that breaks part-way keeps its frames and adds a row
#' saying where it stopped.
#'
#' @param videos A folder of videos (searched recursively), video file paths, or a data frame with a path column.
#' @param out The folder for the frames (new or empty, or `overwrite = TRUE`).
#' @param every Seconds between frames; `NULL` to keep only scene changes.
#' @param scene_threshold Also keep each frame that differs from the last kept one by more than this (0-1;
#'   0.1-0.3 finds cuts).
#' @param max_frames At most this many frames per video.
#' @param overwrite Replace frames already in `out`.
#' @param progress Show a progress bar (default: only in an interactive session).
#' @return A tibble, one row per frame: `video_id`, `video_path`, `frame_id`, `timestamp` (seconds),
#'   `frame_number`, `image_id`, `path` (the frame's file), `duration`, `fps`, `error`.
#' @export
video_frames <- function(videos, out, every = 1, scene_threshold = NULL, max_frames = NULL, overwrite = FALSE,
                         progress = interactive()) {
  result <- engine_call_list(engine()$video_frames, c(
    list(arg_videos(videos), path.expand(arg_string(out, "out"))),
    video_options(every, scene_threshold, max_frames, overwrite, progress)))
  as_tibble_engine(result)
}

#' Label video frames with a fit or the offline tagger
#'
#' @param model A `cnn_fit` ([finetune_cnn()], [load_cnn()]): each frame gets `.pred_class` and `.pred_<class>`; or
#'   `"local"`: the offline ImageNet tagger ([autotag_local()]), several labels per frame.
#' @inheritParams video_frames
#' @param ... Passed to the fit's prediction or to the tagger (e.g. `top_k`, `batch_size`).
#' @return A tibble of class `video_labels`: the frames of [video_frames()] with the labels joined. `autoplot()`
#'   draws the frames on a timeline; [video_summary()] summarises it.
#' @export
label_video <- function(model, videos, out, every = 1, scene_threshold = NULL, max_frames = NULL,
                        overwrite = FALSE, progress = interactive(), ...) {
  engine_model <- if (inherits(model, "cnn_fit")) run_of(model)
    else if (identical(model, "local")) engine()$autotag_local
    else abort_argument("`model` must be a cnn_fit or \"local\" (the offline ImageNet tagger)")
  result <- engine_call_list(engine()$label_video, c(
    list(engine_model, arg_videos(videos), path.expand(arg_string(out, "out"))),
    video_options(every, scene_threshold, max_frames, overwrite, progress), list(...)))
  labels <- if (inherits(model, "cnn_fit")) prediction_tibble(result, model$classes) else as_tibble_engine(result)
  class(labels) <- c("video_labels", class(labels))
  labels
}

#' Per video: how much shows each label, when it first appears, its longest stretch
#'
#' Each sampled frame stands for the time until the next one (the last until the video's end).
#'
#' @param labels The result of [label_video()].
#' @param min_confidence For tagger labels: count only those at or above this confidence (0-100).
#' @return A tibble, one row per video x label: `video_id`, `label`, `frames`, `frames_total`, `share`,
#'   `first_seen`, `last_seen` and `longest_run` (seconds), `runs` (separate appearances), `error`.
#' @export
video_summary <- function(labels, min_confidence = 0) {
  if (!is.data.frame(labels)) abort_argument("`labels` must be the result of label_video()")
  as_tibble_engine(engine_call(engine()$video_summary, engine_table(atomic_columns(labels), kind = "predictions"),
                               min_confidence = arg_number(min_confidence, "min_confidence")))
}

#' @export
#' @rdname label_video
#' @param object For `autoplot()`: the result of [label_video()].
autoplot.video_labels <- function(object, ...) {
  check_dots(...)
  frames <- object[!is.na(object$frame_id), ]
  if (!nrow(frames)) return(empty_plot("No frames"))
  if (".pred_class" %in% names(frames)) {
    frames$shown <- as.character(frames$.pred_class)
  } else {
    # A tagger's most confident label per frame.
    frames <- frames[order(frames$video_id, frames$frame_id, -frames$confidence), ]
    frames <- frames[!duplicated(frames[c("video_id", "frame_id")]), ]
    frames$shown <- frames$label
  }
  step <- stats::median(diff(sort(unique(frames$timestamp))))
  if (!is.finite(step) || step <= 0) step <- 1
  ggplot2::ggplot(frames, ggplot2::aes(x = .data$timestamp, y = .data$video_id, fill = .data$shown)) +
    ggplot2::geom_tile(width = step, height = 0.8, colour = "white") +
    ggplot2::labs(x = "seconds", y = NULL, fill = NULL) +
    ggplot2::theme_minimal() + text_spans_plot()
}

arg_videos <- function(x) {
  if (is.data.frame(x)) return(engine_table(x))
  if (is.character(x) && length(x) >= 1 && !anyNA(x)) {
    return(if (length(x) == 1) path.expand(x) else as.list(path.expand(x)))
  }
  abort_argument(sprintf("`videos` must be a folder, video paths or a data frame with a path column, not %s",
                         describe_value(x)))
}

video_options <- function(every, scene_threshold, max_frames, overwrite, progress) {
  list(every = arg_number(every, "every", null = TRUE),
       scene_threshold = arg_number(scene_threshold, "scene_threshold", null = TRUE),
       max_frames = arg_count(max_frames, "max_frames", null = TRUE), overwrite = arg_flag(overwrite, "overwrite"),
       progress = arg_flag(progress, "progress"))
}
