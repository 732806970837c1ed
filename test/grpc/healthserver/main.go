// Command healthserver is grpc-go's own health service on a port, for
// initbox's tests: it prints "listening ADDR" once it serves, and takes
// "SET SERVICE STATUS" lines on stdin (STATUS: SERVING, NOT_SERVING,
// SERVICE_UNKNOWN, UNKNOWN; SERVICE "" is the server as a whole, written
// as -). With -cert and -key it serves TLS; with -client-ca it requires
// client certificates signed by it; with -no-health it serves gRPC with no
// service at all; with -authority it refuses (PERMISSION_DENIED) a call
// whose :authority is another.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	key := flag.String("key", "", "TLS key (PEM)")
	clientCA := flag.String("client-ca", "", "require client certificates signed by this CA (PEM)")
	noHealth := flag.Bool("no-health", false, "serve gRPC without the health service (Check is UNIMPLEMENTED)")
	authority := flag.String("authority", "", "answer PERMISSION_DENIED to a call whose :authority is not this")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	var opts []grpc.ServerOption
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
		if *clientCA != "" {
			b, err := os.ReadFile(*clientCA)
			if err != nil {
				log.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(b)
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	if *authority != "" {
		opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			if got := md.Get(":authority"); len(got) != 1 || got[0] != *authority {
				return nil, status.Errorf(codes.PermissionDenied, "authority %v, want %s", got, *authority)
			}
			return handler(ctx, req)
		}))
	}
	srv := grpc.NewServer(opts...)
	h := health.NewServer()
	if !*noHealth {
		healthpb.RegisterHealthServer(srv, h)
	}
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "SET" {
				log.Printf("bad command %q", sc.Text())
				continue
			}
			svc := f[1]
			if svc == "-" {
				svc = ""
			}
			st, ok := healthpb.HealthCheckResponse_ServingStatus_value[f[2]]
			if !ok {
				log.Printf("bad status %q", f[2])
				continue
			}
			h.SetServingStatus(svc, healthpb.HealthCheckResponse_ServingStatus(st))
			fmt.Println("ok")
		}
	}()
	fmt.Println("listening", ln.Addr())
	log.Fatal(srv.Serve(ln))
}
