"""Mapping tables: the rule language, its TOML files, the check of a table against both twins, the
drafter, and the layout manifests conversion checks its output against."""
