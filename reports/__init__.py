"""PDF reports, figures and tables built from a run folder (``bench report``)."""
