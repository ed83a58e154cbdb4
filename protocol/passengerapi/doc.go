// Package passengerapi is the contract of ground's passenger API: the JSON
// bodies of every request and answer, the error codes, the request-signing
// scheme (SPEC §10.5) and a Go client. Ground's server (ground/api), the Go
// wallet command (protocol/cmd/wallet) and the web wallet (ground/walletweb)
// all meet here; the written contract with one example per call is
// API.md beside this file.
//
// Endpoints, each signed by a device key:
//
//	POST /v1/passengers            register (signed by the key it enrolls)  → 201 Account
//	GET  /v1/me                    the caller's account                     → 200 Account
//	PUT  /v1/me/funding            link the wallet or a card token          → 200 Account
//	POST /v1/me/devices            enroll a further device key (+ proof)    → 200 Account
//	POST /v1/me/wallet/topups      top up the wallet                        → 200 Balance
//	GET  /v1/me/wallet/{currency}  wallet balance                           → 200 Balance
//	POST /v1/me/credentials        opt in to a flight                       → 201 (new) or 200 (again) Credential
//	GET  /v1/me/charges?limit=N    receipts: what ground charged            → 200 ChargeList
//
// This package imports only protocol and crypto: nothing under protocol/
// depends on ground/ or onboard/.
package passengerapi
