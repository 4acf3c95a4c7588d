"""Email: the approver channel over SMTP (aiosmtplib), signed single-use links, a confirm page."""
