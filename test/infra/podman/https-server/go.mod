module microenforcer.dev/test/infra/podman/https-server

go 1.26.0
