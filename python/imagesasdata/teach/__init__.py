"""The book's section 3, "How a computer sees an image", as small functions a class can run: an image as an
H x W x 3 array of numbers, a small network's arithmetic, activation functions, convolution and pooling worked out
cell by cell (seeing.py). No torch: numpy and Arrow tables. A fitted network's first convolution applied to a real
photo is infer/feature_maps.py.
"""
