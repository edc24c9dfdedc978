"""Running a job: the driver (planning, Ray, progress, summary) and the per-device worker."""
