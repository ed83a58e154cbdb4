package natsvc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/protocol"
)

// The auth callout: how an external NATS cluster lets in each aircraft by
// its registered nkey, with the same per-aircraft permissions the embedded
// server gives it (Auth), without the cluster's configuration listing the
// aircraft. Each nats-server of the cluster is configured with
//
//	authorization {
//	  users: [ { nkey: <ground's user nkey> } ]
//	  auth_callout {
//	    issuer: <the callout account nkey's public key>
//	    auth_users: [ <ground's user nkey> ]
//	  }
//	}
//
// Ground logs in as an auth user with its own nkey; every other client's
// CONNECT makes the server ask ground, on $SYS.REQ.USER.AUTH, in a JWT it
// signs. Ground answers with a user JWT signed by the callout account key:
// the aircraft's subjects (protocol.AircraftPermissions) for a registered
// nkey whose signature over the server's nonce checks out, a refusal for
// anything else. Listing ground's nkey also makes the servers send every
// client a nonce, without which an nkey cannot be proved.
//
// A request is answered only when it is a server's, to this issuer, and
// current (checkRequest). What keeps anyone else from asking is the
// subjects: only the servers and ground, their one auth user, may publish
// on $SYS.REQ.USER.AUTH (an aircraft's permissions do not reach it), and a
// grant is for the per-connection user key and server the request names,
// so a replayed or forged request wins nothing a server would take.

// CalloutSubject is where nats-servers send authorization requests.
const CalloutSubject = "$SYS.REQ.USER.AUTH"

// DefaultCalloutUserTTL is how long an aircraft's authorization lasts
// before the server closes the connection and the aircraft, reconnecting,
// is asked about again: the bound on how long a re-keyed or removed
// aircraft keeps a connection it had.
const DefaultCalloutUserTTL = time.Hour

// Identities lists the registered aircraft and their public user nkeys;
// (*registry.Registry).NATSIdentities is one.
type Identities func(ctx context.Context) (map[protocol.AircraftID]string, error)

// RetiringIdentity is an aircraft's nkey from before a plain key rotation,
// still let in, with the aircraft's rights, until Until.
type RetiringIdentity struct {
	Aircraft protocol.AircraftID
	NKey     string
	Until    time.Time
}

// RetiringIdentities lists the nkeys in their grace at now;
// (*registry.Registry).RetiringNKeys gives them.
type RetiringIdentities func(ctx context.Context, now time.Time) ([]RetiringIdentity, error)

// CalloutConfig configures StartCallout. Conn, Issuer and Identities are
// required.
type CalloutConfig struct {
	// Conn is ground's connection, logged in as one of the servers'
	// auth_users.
	Conn *nats.Conn
	// Issuer is the callout account key pair (its seed starts "SA"), whose
	// public key the servers' auth_callout.issuer names.
	Issuer nkeys.KeyPair
	// Identities are the aircraft let in.
	Identities Identities
	// Retiring, when set, also lets in each aircraft's nkey from before a
	// plain key rotation until its grace ends, as the embedded server does
	// (registry.RetiringNKeys); the user JWT then expires at the grace's
	// end at the latest.
	Retiring RetiringIdentities
	// Account is the NATS account aircraft are placed in. Default "$G",
	// nats-server's global account, where ground and the streams are
	// when the servers configure no accounts.
	Account string
	// Queue is the queue group, so several ground processes share the
	// requests. Default "airtab-ground-auth".
	Queue string
	// UserTTL bounds an authorization's life: the user JWT expires UserTTL
	// after Clock's now (or at a retiring nkey's grace's end, if sooner).
	// Default DefaultCalloutUserTTL (1 hour).
	UserTTL time.Duration
	// MaxAge is how long the callout answers from the aircraft and nkeys
	// it last looked up before looking them up again: it bounds the
	// registry work a flood of logins costs (any client can sign a nonce
	// with an nkey it made; an nkey not found is looked up again when the
	// last lookup is 100 ms old), and is how late a removed nkey may still
	// be let in. Default 1 s.
	MaxAge time.Duration
	// Timeout bounds the registry lookup of one request. Default 2 s,
	// under the servers' default authorization timeout.
	Timeout time.Duration
	// Clock is the time requests are checked against and grants expire
	// from. The servers check a grant's expiry on their own clocks, so it
	// must be the wall clock outside tests. Default time.Now.
	Clock func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Callout answers the servers' authorization requests. Stop it with Stop.
type Callout struct {
	cfg    CalloutConfig
	issuer string // the issuer's public key
	sub    *nats.Subscription
	wg     sync.WaitGroup

	mu       sync.Mutex
	ids      map[string]protocol.AircraftID // current nkey → aircraft
	retiring map[string]RetiringIdentity    // retiring nkey → its grace
	loaded   time.Time                      // when ids and retiring were looked up; zero: never
}

// StartCallout subscribes to CalloutSubject. When it returns, the
// subscription is registered with the server.
func StartCallout(cfg CalloutConfig) (*Callout, error) {
	if cfg.Conn == nil || cfg.Issuer == nil || cfg.Identities == nil {
		return nil, errors.New("natsvc: CalloutConfig.Conn, Issuer and Identities are required")
	}
	pub, err := cfg.Issuer.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("natsvc: auth callout issuer %q is not an account nkey (its seed starts SA)", pub)
	}
	if cfg.Account == "" {
		cfg.Account = "$G"
	}
	if cfg.Queue == "" {
		cfg.Queue = "airtab-ground-auth"
	}
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = DefaultCalloutUserTTL
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Callout{cfg: cfg, issuer: pub}
	c.sub, err = cfg.Conn.QueueSubscribe(CalloutSubject, cfg.Queue, c.handle)
	if err != nil {
		return nil, fmt.Errorf("natsvc: auth callout subscribe: %w", err)
	}
	if err := cfg.Conn.Flush(); err != nil {
		c.sub.Unsubscribe()
		return nil, fmt.Errorf("natsvc: auth callout subscribe: %w", err)
	}
	cfg.Logger.Info("NATS auth callout started", "subject", CalloutSubject, "issuer", pub, "account", cfg.Account)
	return c, nil
}

// Stop unsubscribes and waits for the request in hand.
func (c *Callout) Stop() {
	c.sub.Unsubscribe()
	c.wg.Wait()
}

// handle answers one authorization request. A request that cannot be
// decoded gets no answer (the server times out and refuses the client);
// everything else gets a signed grant or a signed refusal.
func (c *Callout) handle(m *nats.Msg) {
	c.wg.Add(1)
	defer c.wg.Done()
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		c.cfg.Logger.Warn("NATS auth callout: undecodable request", "err", err)
		return
	}
	var userJWT string
	var aircraft protocol.AircraftID
	deny := c.checkRequest(req)
	if deny == nil {
		userJWT, aircraft, deny = c.authorize(req)
	}
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	if deny != nil {
		resp.Error = deny.Error()
		c.cfg.Logger.Warn("NATS auth callout: refused", "nkey", req.ConnectOptions.Nkey, "client", req.ClientInformation.Name,
			"host", req.ClientInformation.Host, "server", req.Server.Name, "reason", deny)
	} else {
		resp.Jwt = userJWT
		c.cfg.Logger.Debug("NATS auth callout: aircraft let in", "aircraft", aircraft, "server", req.Server.Name)
	}
	token, err := resp.Encode(c.cfg.Issuer)
	if err != nil {
		c.cfg.Logger.Error("NATS auth callout: sign response", "err", err)
		return
	}
	if err := m.Respond([]byte(token)); err != nil {
		c.cfg.Logger.Warn("NATS auth callout: respond", "err", err)
	}
}

// requestSkew is how far past its expiry a request is still answered: the
// servers' clocks and ground's may differ a little.
const requestSkew = 30 * time.Second

// checkRequest refuses a request that is not a server's request to this
// callout: one signed by a key that is not a server's (the signature itself
// is checked by the decoding), naming another server than its signer,
// addressed to another issuer or audience, or expired (an old request
// replayed; a server's request lasts its authorization timeout).
func (c *Callout) checkRequest(req *jwt.AuthorizationRequestClaims) error {
	switch {
	case !nkeys.IsValidPublicServerKey(req.Issuer) || req.Issuer != req.Server.ID:
		return fmt.Errorf("request not signed by the server it names (issuer %q, server %q)", req.Issuer, req.Server.ID)
	case req.Subject != c.issuer:
		return fmt.Errorf("request for auth callout issuer %q, not this one", req.Subject)
	case req.Audience != server.AuthRequestSubject:
		return fmt.Errorf("request audience %q, want %q", req.Audience, server.AuthRequestSubject)
	case !nkeys.IsValidPublicUserKey(req.UserNkey):
		return fmt.Errorf("request user nkey %q is not a public user nkey", req.UserNkey)
	case req.Expires == 0:
		return errors.New("request has no expiry")
	case c.cfg.Clock().After(time.Unix(req.Expires, 0).Add(requestSkew)):
		return fmt.Errorf("request expired at %s", time.Unix(req.Expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// authorize checks the client's nkey and its signature over the server's
// nonce, finds the aircraft registered with it, and returns the signed user
// JWT that gives it its permissions, or why not.
func (c *Callout) authorize(req *jwt.AuthorizationRequestClaims) (userJWT string, aircraft protocol.AircraftID, deny error) {
	opts := req.ConnectOptions
	if opts.Nkey == "" {
		return "", "", errors.New("not an aircraft: no nkey")
	}
	if !nkeys.IsValidPublicUserKey(opts.Nkey) {
		return "", "", fmt.Errorf("%q is not a public user nkey", opts.Nkey)
	}
	if err := verifyNonce(opts.Nkey, req.ClientInformation.Nonce, opts.SignedNonce); err != nil {
		return "", "", err
	}
	now := c.cfg.Clock()
	expires := now.Add(c.cfg.UserTTL)
	ids, retiring, err := c.lookup(now, opts.Nkey)
	if err != nil {
		c.cfg.Logger.Error("NATS auth callout: aircraft lookup", "err", err)
		return "", "", errors.New("internal error")
	}
	aircraft = ids[opts.Nkey]
	if k, ok := retiring[opts.Nkey]; aircraft == "" && ok && k.Until.After(now) {
		aircraft = k.Aircraft
		if k.Until.Before(expires) {
			expires = k.Until
		}
	}
	if aircraft == "" {
		return "", "", fmt.Errorf("nkey %s is not registered to an aircraft", opts.Nkey)
	}
	if err := aircraft.Validate(); err != nil { // no wildcard in its subjects
		return "", "", fmt.Errorf("nkey %s: %w", opts.Nkey, err)
	}
	pub, sub := protocol.AircraftPermissions(aircraft)
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = string(aircraft)
	uc.Audience = c.cfg.Account
	// Encode dates the JWT (iat) by the wall clock whatever is set here;
	// its expiry is from Clock.
	uc.Expires = expires.Unix()
	uc.Pub.Allow.Add(pub...)
	uc.Sub.Allow.Add(sub...)
	// A plain client connection, as on the embedded server: not a
	// leafnode (whose permissions a server reads the other way round),
	// websocket or MQTT one, should the cluster listen for those.
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	userJWT, err = uc.Encode(c.cfg.Issuer)
	if err != nil {
		c.cfg.Logger.Error("NATS auth callout: sign user", "aircraft", aircraft, "err", err)
		return "", "", errors.New("internal error")
	}
	return userJWT, aircraft, nil
}

// missAge is how old the last lookup must be for an nkey it does not hold
// to cause another: an aircraft registered a moment ago is let in at once,
// while a flood of unknown nkeys still costs at most one lookup per missAge.
const missAge = 100 * time.Millisecond

// lookup returns the aircraft by current nkey and the retiring nkeys,
// looked up again when the last lookup is MaxAge old, or missAge old and
// without nkey.
func (c *Callout) lookup(now time.Time, nkey string) (map[string]protocol.AircraftID, map[string]RetiringIdentity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.loaded); !c.loaded.IsZero() && age >= 0 && age < c.cfg.MaxAge {
		_, current := c.ids[nkey]
		_, old := c.retiring[nkey]
		if current || old || age < missAge {
			return c.ids, c.retiring, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	byAircraft, err := c.cfg.Identities(ctx)
	if err != nil {
		return nil, nil, err
	}
	ids := make(map[string]protocol.AircraftID, len(byAircraft))
	for id, nk := range byAircraft {
		ids[nk] = id
	}
	retiring := map[string]RetiringIdentity{}
	if c.cfg.Retiring != nil {
		old, err := c.cfg.Retiring(ctx, now)
		if err != nil {
			return nil, nil, fmt.Errorf("retiring nkeys: %w", err)
		}
		for _, k := range old {
			retiring[k.NKey] = k
		}
	}
	c.ids, c.retiring, c.loaded = ids, retiring, now
	return ids, retiring, nil
}

// verifyNonce checks sig, the client's signature over the server's nonce,
// with the client's public nkey. nats.go sends it in unpadded URL-safe
// base64; nats-server also accepts standard base64, and so does this.
func verifyNonce(nkey, nonce, sig string) error {
	if nonce == "" || sig == "" {
		return errors.New("no signed nonce: the servers must send a nonce (list ground's nkey in their authorization users)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return errors.New("signature over the nonce is not base64")
		}
	}
	kp, err := nkeys.FromPublicKey(nkey)
	if err != nil {
		return fmt.Errorf("nkey %s: %w", nkey, err)
	}
	if err := kp.Verify([]byte(nonce), raw); err != nil {
		return fmt.Errorf("nkey %s: signature over the nonce does not verify", nkey)
	}
	return nil
}

// LoadOrCreateNKey reads the nkey seed in file, or creates one of the given
// kind (nkeys.PrefixByteUser for ground's identity, PrefixByteAccount for
// the callout issuer) with mode 0600 and its public key beside it in
// file.pub. created says it was made now.
func LoadOrCreateNKey(file string, kind nkeys.PrefixByte) (kp nkeys.KeyPair, created bool, err error) {
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		kp, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
		if err != nil {
			return nil, false, fmt.Errorf("nkey seed %s: %w", file, err)
		}
		if p := nkeys.Prefix(mustPublic(kp)); p != kind {
			return nil, false, fmt.Errorf("nkey seed %s: a %s key, want a %s key", file, p, kind)
		}
		return kp, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("nkey seed: %w", err)
	}
	kp, err = nkeys.CreatePair(kind)
	if err != nil {
		return nil, false, err
	}
	seed, _ := kp.Seed()
	if err := writeNew(file, append(seed, '\n')); err != nil {
		return nil, false, err
	}
	if err := writeNew(file+".pub", []byte(mustPublic(kp)+"\n")); err != nil {
		return nil, false, err
	}
	return kp, true, nil
}

func mustPublic(kp nkeys.KeyPair) string {
	p, err := kp.PublicKey()
	if err != nil {
		panic("natsvc: nkey without a public key: " + err.Error())
	}
	return p
}

// writeNew creates file (mode 0600) with b and syncs it; it fails if the
// file exists.
func writeNew(file string, b []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("nkey: %w", err)
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("nkey: write %s: %w", file, err)
	}
	return nil
}
