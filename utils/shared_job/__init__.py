"""Several ComfyUI servers on one folder, coordinated only through files in a job folder.

Entry point: job.py (SharedJob: the pass, claiming, renewing and finishing images);
claim_store.py holds the per-image claim chains and leases; files.py the exclusive publishes
and the file server's clock; job_folder.py where a job's folder is and what the setting means.
"""
