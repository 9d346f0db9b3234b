package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths the server answers.
const (
	MetricsPath = "/metrics"
	HealthPath  = "/healthz"
)

// Handler serves the metrics of reg at MetricsPath and the health of src
// at HealthPath. A metric that cannot be read (the outbox, when the
// database fails) is left out and logged to log (nil: slog's default);
// the others are served.
func Handler(reg *prometheus.Registry, src Source, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp_metric_handler_errors_total
		Timeout:       2 * scrapeTimeout,
	}))
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		serveHealth(w, r, src)
	})
	return mux
}

// serveHealth answers 200 with the daemon's health as JSON when it is
// healthy, 503 with the problems otherwise:
//
//	{"status":"ok","jails":{"sshd":"running"}}
//	{"status":"unhealthy","jails":{"sshd":"running"},"problems":["the database does not answer: ..."]}
func serveHealth(w http.ResponseWriter, r *http.Request, src Source) {
	ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
	defer cancel()
	h := src.Health(ctx)
	body := struct {
		Status   string            `json:"status"`
		Jails    map[string]string `json:"jails"`
		Problems []string          `json:"problems,omitempty"`
	}{"ok", h.Jails, h.Problems}
	code := http.StatusOK
	if !h.Healthy {
		body.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body) // the client may be gone: nothing to do about it
}

// Server serves Handler over HTTP.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr (host:port; port 0 picks a free one, see Addr) for
// the handler h. A bind error is returned now, so that the daemon does
// not start without the metrics it was asked to serve.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends, then shuts down, letting requests in
// progress finish for up to 5 seconds.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
