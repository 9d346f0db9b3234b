package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemoSmallWave(t *testing.T) {
	t.Parallel()
	o := DefaultCloudflareOptions()
	o.ListIPs, o.RuleIPs, o.Keep = 300, 40, 20
	o.Timeout = 90 * time.Second
	var out bytes.Buffer
	o.Out = &out
	res, err := RunCloudflare(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !res.OK() || res.HeldItems != 20 || res.HeldRules != 20 {
		t.Errorf("result %+v", res)
	}
	if res.Injected5xx == 0 {
		t.Error("the demo's faults did not fire")
	}
	if !strings.Contains(out.String(), "exactly what should be banned") {
		t.Errorf("the closing table lacks the verdict:\n%s", out.String())
	}
}
