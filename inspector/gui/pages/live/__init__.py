"""The Live page, in pieces with one job each: ``page`` (``LivePage``, which composes them and
talks to the engine's ``LiveController``), ``source_panel`` (source and model), ``live_view``
(the frame, ROI, OK/NG banner and NG review), ``counters`` (counters and the score trend),
``feedback_panel`` (feedback, retraining, versions), ``comparison_dialog`` (current vs new) and
``inbox`` (what the run's threads hand to the UI timer)."""
