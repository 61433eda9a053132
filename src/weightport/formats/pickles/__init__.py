"""The pickle machinery: a scanner that reads a pickle's opcodes without running it, the restricted
unpickler built on it, and the writer of the pickles weightport itself produces."""
