// Tools for initbox's gRPC tests, kept out of initbox's own go.mod: grpc-go's
// own health server (healthserver/) and grpc-health-probe, the oracle people
// bake into their images, both built from the Go module proxy. The test
// harness (internal/testenv/grpctest) builds them once into the Go cache.
module github.com/initbox/initbox/test/grpc

go 1.26.0

require google.golang.org/grpc v1.85.0

require (
	github.com/Microsoft/go-winio v0.6.2 // indirect
	github.com/go-jose/go-jose/v4 v4.1.6 // indirect
	github.com/grpc-ecosystem/grpc-health-probe v0.4.62 // indirect
	github.com/spiffe/go-spiffe/v2 v2.9.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

tool github.com/grpc-ecosystem/grpc-health-probe
