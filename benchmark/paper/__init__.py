"""The paper as data (torch-free ground floor): its axes, its reported values, each table's
specification, and the grids derived from those specifications."""
