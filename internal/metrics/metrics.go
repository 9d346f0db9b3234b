// Package metrics serves edgeban serve's Prometheus metrics and its
// health endpoint.
//
// The metrics live in a registry of their own, not in client_golang's
// global one. Most are read from the daemon when Prometheus scrapes
// (Source): the jails that run at that moment, with the counters they
// keep, and the Cloudflare outbox, so that the metrics follow reloads
// and nothing on a jail's path knows about Prometheus. The Cloudflare
// worker's HTTP attempts are counted as they happen, by Cloudflare's
// Observe. The names follow Prometheus's conventions: the edgeban_
// prefix, _total for counters, base units (seconds).
package metrics

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/daemon"
)

// Source is what the metrics read from the daemon at each scrape, and
// what the health endpoint asks.
type Source interface {
	Stats(ctx context.Context) (daemon.Stats, error)
	Health(ctx context.Context) daemon.Health
}

// scrapeTimeout bounds what a scrape asks the daemon (the database's
// queries among it).
const scrapeTimeout = 5 * time.Second

// NewRegistry returns the registry of the daemon's metrics: those read
// from src at each scrape, the Cloudflare worker's (cf), edgeban's
// version, and the Go runtime's and the process's own.
func NewRegistry(src Source, cf *Cloudflare, version string) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "edgeban_build_info",
		Help:        "Always 1; its labels say which edgeban runs, built with which Go.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{
		info,
		&daemonCollector{src: src},
		cf,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Descriptions of the metrics read from the daemon.
var (
	descHealthy = prometheus.NewDesc("edgeban_healthy",
		"1 when the daemon is healthy (its health endpoint answers 200), else 0.", nil, nil)
	descLinesRead = prometheus.NewDesc("edgeban_lines_read_total",
		"Lines read from the jail's logs.", []string{"jail"}, nil)
	descLinesMatched = prometheus.NewDesc("edgeban_lines_matched_total",
		"Lines of the jail's logs in which its filter found a failure.", []string{"jail"}, nil)
	descFailures = prometheus.NewDesc("edgeban_failures_total",
		"Failures the jail counted towards a ban.", []string{"jail"}, nil)
	descIgnored = prometheus.NewDesc("edgeban_failures_ignored_total",
		"Failures the jail's ignore rules let pass (ignoreip, ignoreself, ignorecommand, Cloudflare's own addresses).", []string{"jail"}, nil)
	descBans = prometheus.NewDesc("edgeban_bans_total",
		"Bans the jail made, by failures or by hand (restored bans are not new).", []string{"jail"}, nil)
	descActive = prometheus.NewDesc("edgeban_bans_active",
		"Bans of the jail in force.", []string{"jail"}, nil)
	descQueue = prometheus.NewDesc("edgeban_action_queue_depth",
		"Action work waiting in the jail's background: restored bans whose actions have not run again, failed action bans waiting for their retry.", []string{"jail"}, nil)
	descActionBans = prometheus.NewDesc("edgeban_action_bans_total",
		"Bans the action carried out (restored bans and retries included).", []string{"jail", "action"}, nil)
	descActionUnbans = prometheus.NewDesc("edgeban_action_unbans_total",
		"Unbans the action carried out.", []string{"jail", "action"}, nil)
	descActionErrors = prometheus.NewDesc("edgeban_action_errors_total",
		"Bans or unbans of the action that failed (a failed ban is tried again).", []string{"jail", "action", "op"}, nil)
	descCFRules = prometheus.NewDesc("edgeban_cloudflare_rules",
		"Rules or list items Cloudflare holds for edgeban's bans, as far as the outbox knows.", []string{"destination"}, nil)
	descCFPending = prometheus.NewDesc("edgeban_cloudflare_outbox_pending",
		"Bans (op=ban) and unbans (op=unban) in the outbox still to send to Cloudflare.", []string{"destination", "op"}, nil)
	descCFFailing = prometheus.NewDesc("edgeban_cloudflare_outbox_failing",
		"Bans and unbans still to send whose last attempt failed.", []string{"destination"}, nil)
	descCFHeld = prometheus.NewDesc("edgeban_cloudflare_outbox_held",
		"Bans a capacity policy keeps from Cloudflare.", []string{"destination"}, nil)
)

// daemonCollector reads the daemon's metrics at each scrape.
type daemonCollector struct {
	src Source
}

// Describe implements prometheus.Collector.
func (c *daemonCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealthy, descLinesRead, descLinesMatched, descFailures, descIgnored,
		descBans, descActive, descQueue, descActionBans, descActionUnbans, descActionErrors,
		descCFRules, descCFPending, descCFFailing, descCFHeld} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Values with the same labels
// are added up: two actions of one name in a jail, two destinations
// status names alike.
func (c *daemonCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	healthy := 0.0
	if c.src.Health(ctx).Healthy {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy)
	st, err := c.src.Stats(ctx)
	m := newSums()
	for _, j := range st.Jails {
		m.add(descLinesRead, float64(j.LinesRead), j.Jail)
		m.add(descLinesMatched, float64(j.LinesMatched), j.Jail)
		m.add(descFailures, float64(j.Failures), j.Jail)
		m.add(descIgnored, float64(j.Ignored), j.Jail)
		m.add(descBans, float64(j.Bans), j.Jail)
		m.add(descActive, float64(j.Active), j.Jail)
		m.add(descQueue, float64(j.Queue), j.Jail)
		for _, a := range j.Actions {
			m.add(descActionBans, float64(a.Bans), j.Jail, a.Name)
			m.add(descActionUnbans, float64(a.Unbans), j.Jail, a.Name)
			m.add(descActionErrors, float64(a.BanErrors), j.Jail, a.Name, "ban")
			m.add(descActionErrors, float64(a.UnbanErrors), j.Jail, a.Name, "unban")
		}
	}
	for _, o := range st.Cloudflare {
		m.add(descCFRules, float64(o.Live), o.Where)
		m.add(descCFPending, float64(o.PendingBan), o.Where, "ban")
		m.add(descCFPending, float64(o.PendingUnban), o.Where, "unban")
		m.add(descCFFailing, float64(o.Failing), o.Where)
		m.add(descCFHeld, float64(o.Held), o.Where)
	}
	m.emit(ch)
	if err != nil {
		// The jails' metrics are there; the outbox's could not be read.
		ch <- prometheus.NewInvalidMetric(descCFPending, err)
	}
}

// sums adds up values by metric and labels, keeping their first order.
type sums struct {
	order []sumKey
	value map[sumKey]float64
}

type sumKey struct {
	desc   *prometheus.Desc
	labels string // the label values, NUL-separated
}

func newSums() *sums {
	return &sums{value: map[sumKey]float64{}}
}

func (s *sums) add(d *prometheus.Desc, v float64, labels ...string) {
	k := sumKey{d, strings.Join(labels, "\x00")}
	if _, ok := s.value[k]; !ok {
		s.order = append(s.order, k)
	}
	s.value[k] += v
}

func (s *sums) emit(ch chan<- prometheus.Metric) {
	for _, k := range s.order {
		ch <- prometheus.MustNewConstMetric(k.desc, valueType(k.desc), s.value[k], strings.Split(k.labels, "\x00")...)
	}
}

// valueType tells a gauge from a counter.
func valueType(d *prometheus.Desc) prometheus.ValueType {
	switch d {
	case descActive, descQueue, descCFRules, descCFPending, descCFFailing, descCFHeld, descHealthy:
		return prometheus.GaugeValue
	}
	return prometheus.CounterValue
}

// Cloudflare counts the HTTP attempts of the daemon's Cloudflare worker
// and the waits the rate budget imposed on them. Observe is the worker's
// observer (daemon.CloudflareOptions.Observe). It is a
// prometheus.Collector.
type Cloudflare struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	waits       prometheus.Counter
	waitSeconds prometheus.Counter
}

// NewCloudflare returns the Cloudflare worker's metrics, all at zero.
func NewCloudflare() *Cloudflare {
	return &Cloudflare{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeban_cloudflare_requests_total",
			Help: `HTTP requests to Cloudflare's API by method and status code ("none": no answer came, e.g. a timeout).`,
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edgeban_cloudflare_request_duration_seconds",
			Help:    "Time from sending a request to Cloudflare's API to the end of its answer.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeban_cloudflare_ratelimit_waits_total",
			Help: "Requests to Cloudflare held back by the rate budget: the credential's budget used up, or a 429's lockout.",
		}),
		waitSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeban_cloudflare_ratelimit_wait_seconds_total",
			Help: "Time requests to Cloudflare spent held back by the rate budget.",
		}),
	}
}

// Observe counts one HTTP attempt. A rate-limit wait is the time the
// budget held the attempt back, and the pause after a 429 before the
// attempt that follows it.
func (c *Cloudflare) Observe(a cloudflare.Attempt) {
	code := "none"
	if a.Status != 0 {
		code = strconv.Itoa(a.Status)
	}
	c.requests.WithLabelValues(a.Method, code).Inc()
	c.duration.WithLabelValues(a.Method).Observe(a.Duration.Seconds())
	if a.Throttled > 0 {
		c.waits.Inc()
		c.waitSeconds.Add(a.Throttled.Seconds())
	}
	if a.Retry && a.Status == 429 {
		c.waits.Inc()
		c.waitSeconds.Add(a.Wait.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (c *Cloudflare) Describe(ch chan<- *prometheus.Desc) {
	c.requests.Describe(ch)
	c.duration.Describe(ch)
	c.waits.Describe(ch)
	c.waitSeconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Cloudflare) Collect(ch chan<- prometheus.Metric) {
	c.requests.Collect(ch)
	c.duration.Collect(ch)
	c.waits.Collect(ch)
	c.waitSeconds.Collect(ch)
}
