"""Container images of the deployment: building the six targets of infrastructure/images/Dockerfile with the
machine's container engine (`build`), the registry-free Debian base (`base`), and the engine's configuration
(`engine`)."""
