"""Apps that tests serve, with gsse run or in-process."""
