// vcsim for the tests: VMware's vCenter simulator (govmomi's simulator package,
// which Debian ships as a library without its command) on 127.0.0.1 over TLS.
//
// govmomi 0.24's PropertyCollector ignores RetrieveOptions.maxObjects and lacks
// ContinueRetrievePropertiesEx, so this main wraps it (the simulator's own way
// of extending a managed object) with the paging a real vCenter does. Its
// CloneVM_Task also drops spec.config.annotation, which vCenter gives the
// clone, so the inventory's VMs are wrapped to keep it.
//
// It writes the PEM of a throwaway CA to -ca-out, prints one line
// "VCSIM_URL=https://127.0.0.1:PORT/sdk" on stdout, and serves until it gets
// SIGINT/SIGTERM or its stdin reaches end of file (so it dies with the test
// process that started it).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	username := flag.String("username", "user", "the only user that may log in")
	password := flag.String("password", "pass", "that user's password")
	caOut := flag.String("ca-out", "", "file to write the CA certificate (PEM) to")
	machines := flag.Int("vm", 2, "virtual machines per host and per cluster")
	hosts := flag.Int("host", 1, "standalone hosts per datacenter")
	datacenters := flag.Int("dc", 1, "datacenters")
	autostart := flag.Bool("autostart", true, "power the virtual machines on")
	idle := flag.Duration("idle-timeout", 0, "expire sessions idle this long (0: never)")
	flag.Parse()
	if *caOut == "" {
		log.Fatal("-ca-out is required")
	}

	cert, err := tlsCertificate(*caOut)
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}

	model := simulator.VPX()
	model.Datacenter = *datacenters
	model.Host = *hosts
	model.Machine = *machines
	model.Autostart = *autostart
	if err := model.Create(); err != nil {
		log.Fatalf("model: %v", err)
	}
	defer model.Remove()
	pc := simulator.Map.Get(model.ServiceContent.PropertyCollector).(*simulator.PropertyCollector)
	simulator.Map.Put(&pagingCollector{PropertyCollector: simulator.PropertyCollector{PropertyCollector: pc.PropertyCollector}})
	for _, obj := range simulator.Map.All("VirtualMachine") {
		// By value: the PropertyCollector finds the mo type through embedded structs only.
		simulator.Map.Put(&annotatedCloneVM{VirtualMachine: *obj.(*simulator.VirtualMachine)})
	}
	simulator.SessionIdleTimeout = *idle

	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	server := model.Service.NewServer()
	defer server.Close()

	shown := *server.URL
	shown.User = nil
	fmt.Printf("VCSIM_URL=%s\n", shown.String())

	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		done <- syscall.SIGTERM
	}()
	<-done
}

// tlsCertificate makes a throwaway CA and a server certificate it signs for
// 127.0.0.1 and localhost, so clients can verify the server with the CA file.
func tlsCertificate(caPath string) (tls.Certificate, error) {
	notBefore := time.Now().Add(-time.Hour)
	notAfter := notBefore.Add(7 * 24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "deltaweb test vcsim CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          []byte{1, 2, 3, 4},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	leafTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTemplate, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}

	pemCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(caPath, pemCA, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}, nil
}

// pagingCollector answers RetrievePropertiesEx in pages of RetrieveOptions.maxObjects,
// handing out a token for the rest, as vCenter does. The simulator clones it per
// session (a zero value of this type), so tokens belong to one session.
type pagingCollector struct {
	simulator.PropertyCollector

	mu    sync.Mutex
	next  int
	pages map[string]pendingPages
}

type pendingPages struct {
	objects []types.ObjectContent
	size    int
}

func (pc *pagingCollector) RetrievePropertiesEx(ctx *simulator.Context, r *types.RetrievePropertiesEx) soap.HasFault {
	body := pc.PropertyCollector.RetrievePropertiesEx(ctx, r).(*methods.RetrievePropertiesExBody)
	if body.Res == nil || body.Res.Returnval == nil {
		return body
	}
	size := int(r.Options.MaxObjects)
	result := body.Res.Returnval
	if size > 0 && len(result.Objects) > size {
		result.Token = pc.keep(result.Objects[size:], size)
		result.Objects = result.Objects[:size]
	}
	return body
}

func (pc *pagingCollector) ContinueRetrievePropertiesEx(ctx *simulator.Context, r *types.ContinueRetrievePropertiesEx) soap.HasFault {
	body := &methods.ContinueRetrievePropertiesExBody{}
	pc.mu.Lock()
	pending, ok := pc.pages[r.Token]
	delete(pc.pages, r.Token)
	pc.mu.Unlock()
	if !ok {
		body.Fault_ = simulator.Fault("unknown or finished token", &types.InvalidArgument{InvalidProperty: "token"})
		return body
	}
	result := types.RetrieveResult{Objects: pending.objects}
	if len(pending.objects) > pending.size {
		result.Token = pc.keep(pending.objects[pending.size:], pending.size)
		result.Objects = pending.objects[:pending.size]
	}
	body.Res = &types.ContinueRetrievePropertiesExResponse{Returnval: result}
	return body
}

func (pc *pagingCollector) CancelRetrievePropertiesEx(ctx *simulator.Context, r *types.CancelRetrievePropertiesEx) soap.HasFault {
	pc.mu.Lock()
	delete(pc.pages, r.Token)
	pc.mu.Unlock()
	return &methods.CancelRetrievePropertiesExBody{Res: &types.CancelRetrievePropertiesExResponse{}}
}

func (pc *pagingCollector) keep(rest []types.ObjectContent, size int) string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.pages == nil {
		pc.pages = make(map[string]pendingPages)
	}
	pc.next++
	token := strconv.Itoa(pc.next)
	pc.pages[token] = pendingPages{objects: rest, size: size}
	return token
}

// annotatedCloneVM gives a clone the annotation (description) of its clone spec.
type annotatedCloneVM struct {
	simulator.VirtualMachine
}

func (vm *annotatedCloneVM) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	body := vm.VirtualMachine.CloneVMTask(ctx, req)
	res, ok := body.(*methods.CloneVM_TaskBody)
	if !ok || res.Res == nil {
		return body
	}
	task, ok := simulator.Map.Get(res.Res.Returnval).(*simulator.Task)
	if !ok {
		return body
	}
	ref, ok := task.Info.Result.(types.ManagedObjectReference)
	if !ok {
		return body
	}
	clone, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return body
	}
	if req.Spec.Config != nil && req.Spec.Config.Annotation != "" {
		clone.Config.Annotation = req.Spec.Config.Annotation
		clone.Summary.Config.Annotation = req.Spec.Config.Annotation
	}
	// so that clones of the clone keep their annotation too
	simulator.Map.Put(&annotatedCloneVM{VirtualMachine: *clone})
	return body
}
