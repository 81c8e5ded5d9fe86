"""E-mail notifications: failure alerts and scheduled digests of a data connection's runs.

* :mod:`.alerts` -- :class:`~.alerts.FailureAlert`, the ``on_failure_callback`` of every
  ingestion task (after its last retry).
* :mod:`.digest` -- what a digest reports (runs, loads, failures, tasks behind schedule), read
  from Airflow's REST API.
* :mod:`.dags` -- the digest DAGs and :class:`~.dags.HydroDigestOperator`.
* :mod:`.render`, :mod:`.charts`, :mod:`.mail` -- text and HTML bodies, charts, sending through
  an Airflow SMTP connection.

Recipients are the data connection's ``notification.recipient_emails``; the SMTP connection is
Airflow's ``[email] email_conn_id`` (``smtp_default`` unless configured).
"""
