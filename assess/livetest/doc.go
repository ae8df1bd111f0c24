// Package livetest runs the assessment against a real Rampart server: a
// model trained by a job on credit_data, served by endpoints with the
// default guards and with the guards off, attacked over HTTP by service-user
// principals (PRIV-2). It only holds tests.
package livetest
