"""The rules pad's data follows, in one home each: answers, labels, extraction, syntax guard, display, option checks."""
