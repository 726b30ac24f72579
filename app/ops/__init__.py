"""Operations endpoints: liveness, readiness and metrics for the platform that runs the service."""
