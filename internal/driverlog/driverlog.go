// Package driverlog carries a component's logger to the gocloud.dev/pubsub
// drivers that hear errors apart from any call (the nats driver's client
// reports a permissions violation or a broken connection asynchronously).
// gocloud's URL openers get only a context and the URL, so the logger
// travels in the context of the open.
package driverlog

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"
)

type key struct{}

// With is ctx carrying log, for the driver that the open under ctx reaches.
func With(ctx context.Context, log *service.Logger) context.Context {
	return context.WithValue(ctx, key{}, log)
}

// From is the logger ctx carries, or nil.
func From(ctx context.Context) *service.Logger {
	log, _ := ctx.Value(key{}).(*service.Logger)
	return log
}
