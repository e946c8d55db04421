"""Run programs: the whole investigation, the step runner (BCC), BCC loading, progress, the
machine checks of `doctor`, and runbook self-tests."""
