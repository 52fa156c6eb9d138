package subscription

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	_ "gocloud.dev/pubsub/mempubsub"
)

// TestShownURLHidesEveryQueryValue: a secret may sit under any name (a
// proxy's ?auth=, a ?k=), so every query value is written xxxxx, a part
// without = whole; the names stay, in their order, to tell which setting is
// wrong.
func TestShownURLHidesEveryQueryValue(t *testing.T) {
	for raw, want := range map[string]string{
		"nats://u:pass@nats.example/subject?auth=a1&k=b2&sig=c3&bare":   "nats://u:xxxxx@nats.example/subject?auth=xxxxx&k=xxxxx&sig=xxxxx&xxxxx",
		"gcppubsubv2://acme/created?credential=x&max_recv_batch_size=5": "gcppubsubv2://acme/created?credential=xxxxx&max_recv_batch_size=xxxxx",
		"rabbit://orders": "rabbit://orders",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if shown, _ := ShownURL(u); shown != want {
			t.Errorf("%s shown as %s, want %s", raw, shown, want)
		}
	}
}

// TestOpenErrorsHideEveryQueryValue: gocloud's errors quote the URL, as
// written or encoded again (the Rabbit subscription adds its
// prefetch_count), and a value alone: none of the values shows, whatever
// its parameter's name.
func TestOpenErrorsHideEveryQueryValue(t *testing.T) {
	_, err := Open(context.Background(), "mem://t?auth=auth-never-print&k=k-never-print", 1)
	if err == nil || strings.Contains(err.Error(), "never-print") || !strings.Contains(err.Error(), "mem://t?auth=xxxxx&k=xxxxx") {
		t.Errorf("Open gave %v, want the URL named with its values written xxxxx", err)
	}
	raw := "rabbit://orders?k=k/never-print&auth=auth-never-print"
	driver := fmt.Errorf("open subscription rabbit://orders?auth=auth-never-print&k=k%%2Fnever-print&prefetch_count=4: invalid value %q", "auth-never-print")
	if err := HideURL(raw, driver); strings.Contains(err.Error(), "never-print") || !strings.Contains(err.Error(), "k=xxxxx") {
		t.Errorf("HideURL gave %v, want no query value", err)
	}
}

// TestHideURLOfAnUnparsableURL: a URL that does not parse is named by the
// parser's reason alone, not the bad escape it quotes, a piece of a secret.
func TestHideURLOfAnUnparsableURL(t *testing.T) {
	raw := "rabbit://guest:pass%zzword@orders"
	_, perr := url.Parse(raw)
	err := HideURL(raw, fmt.Errorf("open pubsub.Subscription: %w", perr))
	if strings.Contains(err.Error(), "%zz") || !strings.Contains(err.Error(), "an invalid % escape") {
		t.Errorf("HideURL gave %v, want the reason without the escape", err)
	}
}

// TestRabbitServerURLQueryValuesHidden: the broker's URL, named when it
// cannot be reached, shows no query value either.
func TestRabbitServerURLQueryValuesHidden(t *testing.T) {
	t.Setenv(RabbitServerEnv, "amqp://guest:pass-never-print@127.0.0.1:9/?auth=auth-never-print")
	_, err := rabbitDial()
	if err == nil || strings.Contains(err.Error(), "never-print") || !strings.Contains(err.Error(), "amqp://guest:xxxxx@127.0.0.1:9/?auth=xxxxx") {
		t.Errorf("rabbitDial gave %v, want the broker named with its password and query values written xxxxx", err)
	}
}
