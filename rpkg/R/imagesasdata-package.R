#' imagesasdata: images as data for social science research
#'
#' Fine-tune, validate and apply CNN image classifiers from R, following Webb Williams, Casas & Wilkerson (2020),
#' *Images as Data for Social Science Research*. The pipeline: images -> a prepared corpus ([image_inventory()],
#' [find_duplicates()], [filter_small()], [aggregate_annotations()], [emotion_labels()], [split_images()]) ->
#' labelled table ([image_table()]) -> fit ([finetune_cnn()], or a grid: [tune_cnn()], [lr_find()]) -> validation
#' ([cnn_metrics()], [autoplot.cnn_fit()], [grid_summary()]) -> predictions ([predict.cnn_fit()]) -> your analysis.
#' Off-the-shelf autotaggers ([rekognition_labels()], [autotag_local()]) are validated against manual labels with
#' [compare_tags()]. From predicted labels to estimates a researcher can defend: every metric has an interval;
#' [draw_gold_sample()], [write_coding_sheet()], [read_coding_sheet()] and [gold_metrics()] measure the classifier
#' on the corpus; [cnn_calibration()] and [choose_threshold()] calibrate and tune its outputs; [corrected_glm()] and
#' [corrected_prevalence()] correct regressions and shares for its errors. The work is done by the imagesasdata
#' Python engine, reached through reticulate;
#' [install_engine()] sets it up and [engine_available()] checks it.
#'
#' @keywords internal
"_PACKAGE"

#' @importFrom ggplot2 autoplot
#' @importFrom rlang .data
#' @importFrom stats predict
NULL

#' @importFrom ggplot2 autoplot
#' @export
ggplot2::autoplot
