"""Live fairness alerts: rules over monitored predictions, alert rows and signed webhooks."""
