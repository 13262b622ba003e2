library(testthat)
library(imagesasdata)

test_check("imagesasdata")
