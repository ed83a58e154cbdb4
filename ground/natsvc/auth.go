package natsvc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/airtab/airtab/protocol"
)

// Auth is who may connect to the embedded server: ground itself, with a
// user and password made fresh at every start, and each registered aircraft
// by its nkey, with permissions from protocol.AircraftPermissions so an
// aircraft can publish only as itself and read only its own receipts,
// manifests and replies.
type Auth struct {
	GroundUser     string
	GroundPassword string
	Aircraft       []AircraftIdentity

	base       *server.Options // the options the server started with
	groundHash string          // bcrypt of GroundPassword
	refusals   *refusals       // the server's refused-login log, told the aircraft nkeys
}

// AircraftIdentity is an aircraft's NATS identity: its public user nkey
// ("U…"). The aircraft holds the seed.
type AircraftIdentity struct {
	ID   protocol.AircraftID
	NKey string
}

// NewAuth returns an Auth for ground with a random password and no aircraft
// yet.
func NewAuth() (*Auth, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &Auth{GroundUser: "airtab-ground", GroundPassword: hex.EncodeToString(b)}, nil
}

// apply writes the users and nkey users into opts.
func (a *Auth) apply(opts *server.Options) error {
	if a.groundHash == "" {
		// The server keeps only a bcrypt hash of ground's password. At
		// the least cost: the password is 192 random bits made at every
		// start, too many to guess from the hash at any cost, while the
		// cost is paid at every login of ground's
		// (a check takes 72 ms at the default cost, 1.2 ms at the
		// least, on a 2-core Xeon). A check that outlasts 2 s on a
		// loaded machine also fails the login: the server's first PING
		// then reaches nats.go before the PONG it waits for.
		h, err := bcrypt.GenerateFromPassword([]byte(a.GroundPassword), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("nats auth: %w", err)
		}
		a.groundHash = string(h)
	}
	opts.Users = []*server.User{{Username: a.GroundUser, Password: a.groundHash}}
	opts.Nkeys = nil
	for _, ac := range a.Aircraft {
		if err := ac.ID.Validate(); err != nil {
			return fmt.Errorf("nats auth: %w", err)
		}
		if !nkeys.IsValidPublicUserKey(ac.NKey) {
			return fmt.Errorf("nats auth: aircraft %s: %q is not a public user nkey", ac.ID, ac.NKey)
		}
		pub, sub := protocol.AircraftPermissions(ac.ID)
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
			Nkey: ac.NKey,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: slices.Clone(pub)},
				Subscribe: &server.SubjectPermission{Allow: slices.Clone(sub)},
			},
		})
	}
	return nil
}

// SetAircraft replaces the aircraft allowed on the running server s and
// reloads its authorization; connections of aircraft no longer listed are
// closed by the server.
func SetAircraft(s *server.Server, a *Auth, aircraft []AircraftIdentity) error {
	next := *a
	next.Aircraft = slices.Clone(aircraft)
	if a.base == nil {
		return fmt.Errorf("nats auth: server was not started with this Auth")
	}
	opts := a.base.Clone()
	if err := next.apply(opts); err != nil {
		return err
	}
	if a.refusals != nil {
		defer a.refusals.reloading()()
	}
	if err := s.ReloadOptions(opts); err != nil {
		return fmt.Errorf("nats auth: reload: %w", err)
	}
	a.Aircraft = next.Aircraft
	if a.refusals != nil {
		a.refusals.setKnown(a.Aircraft)
	}
	return nil
}
