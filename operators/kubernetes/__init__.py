"""The kubernetes launcher: pool profiles (`pools`), pure manifest builders (`spec`), and the job
lifecycle (`indexed_job`, with `job_pods`, `pod_diagnosis` and `job_logs`); `run_cleanup` for the
DAG's cleanup step and `api` for clients and API errors."""
