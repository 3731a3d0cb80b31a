"""Call lists (`telephony dial --list FILE.csv`): the file and its quiet hours (`list_file`),
the run with its concurrency, pace, retries and resumable progress (`list_run`), and the
results file (`list_results`). Progress is kept in the call store (`store.list_calls`)."""
