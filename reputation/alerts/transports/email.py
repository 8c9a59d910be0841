"""Email through Django's mail (any SMTP server, EMAIL_* settings): plain text and HTML."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from reputation.alerts.transports.base import MAX_TIMEOUT, Message, Transport, TransportError


def smtp_timeout() -> float:
    """EMAIL_TIMEOUT, at most MAX_TIMEOUT (none set: MAX_TIMEOUT): a silent relay fails the
    send instead of holding it past its claim."""
    return min(getattr(settings, "EMAIL_TIMEOUT", None) or MAX_TIMEOUT, MAX_TIMEOUT)


class EmailTransport(Transport):
    def notify(self, message: Message) -> str:
        to = list(self.config.get("to") or [])
        if not to:
            raise TransportError("no recipient address", permanent=True)
        mail = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=to,
            connection=get_connection(timeout=smtp_timeout()),
        )
        mail.attach_alternative(message.html, "text/html")
        try:
            mail.send()
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            permanent = all(code >= 500 for code, _ in exc.recipients.values())  # 4xx: greylisted
            raise TransportError(f"recipients refused: {refused}", permanent=permanent) from None
        except ValueError as exc:  # a malformed address
            raise TransportError(f"bad address: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else exc.smtp_error
            )
            raise TransportError(f"SMTP {exc.smtp_code} {text}", permanent=permanent) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"cannot send mail: {exc}") from None
        return ", ".join(to)
