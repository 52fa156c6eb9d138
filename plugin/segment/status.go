package segment

import "net/http"

// How the output treats each HTTP answer: the one place that decides.

// statusClass says how to treat an HTTP answer from Segment. Segment's docs:
// 400/401/403/404/413/422 are permanent; 408, 429 and 5xx (but 501 and 505,
// which no retry changes) are transient. Other statuses are permanent, so
// nothing unexpected is retried for ever; of the permanent ones, only
// answers that blame the calls (blamesCalls) are split; refusesEveryCall
// holds the others.
func statusClass(status int) (ok, transient bool) {
	switch {
	case status >= 200 && status < 300:
		return true, false
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return false, true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false, false
	case status >= 500:
		return false, true
	}
	return false, false
}

// blamesCalls says whether an answer blames the request's content (400, 413,
// 422): splitting a batch finds the calls at fault, so the rest are not
// dead-lettered with them. A 400 or 422 web page is not Segment's, whose
// API answers JSON, but a front's refusing every request (nginx's "plain
// HTTP request was sent to HTTPS port", a load balancer's error page):
// split, every call was dead-lettered. A 413 page is still split: a proxy
// with a lower limit on bodies takes the halves.
func (r postResult) blamesCalls() bool {
	switch r.status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return !r.page
	case http.StatusRequestEntityTooLarge:
		return true
	}
	return false
}

// class is statusClass for an answer: a 2xx web page is not the API's
// acceptance, and like any permanent answer that does not blame the calls
// it holds them (refusesEveryCall).
func (r postResult) class() (ok, transient bool) {
	if r.page && r.status < 300 {
		return false, false
	}
	return statusClass(r.status)
}
