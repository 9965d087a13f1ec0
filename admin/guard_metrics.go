package admin

// The metric of the admin listener's guard.

import "github.com/prometheus/client_golang/prometheus"

// newAdminRefused registers shardgate_admin_refused_total{code}: admin
// requests refused with 403 (client not in admin.allow) or 401 (missing or
// wrong credentials).
func newAdminRefused(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "shardgate", Name: "admin_refused_total",
		Help: "Admin requests refused, by status code (403 not allowed, 401 unauthenticated).",
	}, []string{"code"})
	reg.MustRegister(v)
	return v
}
