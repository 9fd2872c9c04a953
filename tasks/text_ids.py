"""The special token ids of the translation tasks' shared subword vocabulary (tasks 4a and 4b):
the same four ids in the prepared data, the models (padding) and decoding (start and end)."""

PAD = 0  # padding: never predicted, ignored by the loss
UNK = 1  # a subword the vocabulary lacks
BOS = 2  # start of a target sentence (the decoder's first input)
EOS = 3  # end of a sentence
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")  # vocabulary entries 0..3, in id order
VOCABULARY_MULTIPLE = 8  # the vocabulary is padded to a multiple of 8 (tensor-core friendly shapes)
