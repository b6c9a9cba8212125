"""distill: the teacher, the durable job queue, the quota-aware key pool and the runner."""
