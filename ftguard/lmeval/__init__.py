"""lm-evaluation-harness: its tasks inside suites (:mod:`.bridge`) and its outputs imported
as RunRecords (:mod:`.importer`). lm-eval itself is imported only when a task runs."""
