"""The paper's tables: presets (conf/tables/<table>.yaml), the paper's own numbers (paper_values.csv), a planner that
composes every job of a table, a runner and a printer (`python -m unlearn.tables run table1 --scale cpu`)."""
