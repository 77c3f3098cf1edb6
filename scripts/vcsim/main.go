// Command vcsim serves govmomi's vCenter/ESXi simulator on a local address, for distrokit's
// vSphere tests and benchmarks. It is built offline from Debian's Go packages by
// scripts/build-vcsim (GOPATH mode, no module download).
//
// It writes "export GOVC_URL=URL GOVC_SIM_PID=PID" to the file named by -E once it listens, so a
// caller can start it on port 0 and read the address it got. SIGTERM or SIGINT stops it and
// removes the simulator's temporary datastore directories.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	model := simulator.VPX()

	flag.IntVar(&model.Datacenter, "dc", model.Datacenter, "number of datacenters")
	flag.IntVar(&model.Cluster, "cluster", model.Cluster, "number of clusters")
	flag.IntVar(&model.ClusterHost, "host", model.ClusterHost, "number of hosts per cluster")
	flag.IntVar(&model.Host, "standalone-host", model.Host, "number of standalone hosts")
	flag.IntVar(&model.Datastore, "ds", model.Datastore, "number of local datastores")
	flag.IntVar(&model.Machine, "vm", model.Machine, "number of virtual machines per resource pool")
	flag.IntVar(&model.Pool, "pool", model.Pool, "number of resource pools per compute resource")
	flag.IntVar(&model.Portgroup, "pg", model.Portgroup, "number of distributed port groups")
	flag.IntVar(&model.Folder, "folder", model.Folder, "number of folders")
	esx := flag.Bool("esx", false, "simulate a standalone ESXi host instead of a vCenter")
	useTLS := flag.Bool("tls", true, "serve https")
	cert := flag.String("tlscert", "", "TLS certificate (PEM); default: a built-in test certificate")
	key := flag.String("tlskey", "", "TLS private key (PEM) of -tlscert")
	listen := flag.String("l", "127.0.0.1:0", "listen address")
	user := flag.String("username", "", "the only user accepted (default: any)")
	pass := flag.String("password", "", "the only password accepted (default: any)")
	envFile := flag.String("E", "", "write GOVC_URL and GOVC_SIM_PID to this file (default stdout)")
	flag.Parse()

	if *esx {
		opts := model
		model = simulator.ESX()
		model.Datastore = opts.Datastore
		model.Machine = opts.Machine
	}
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}

	u := &url.URL{Host: *listen}
	if *user != "" {
		u.User = url.UserPassword(*user, *pass)
	}
	model.Service.Listen = u
	if *useTLS {
		model.Service.TLS = new(tls.Config)
		if *cert != "" {
			pair, err := tls.LoadX509KeyPair(*cert, *key)
			if err != nil {
				log.Fatal(err)
			}
			model.Service.TLS.Certificates = []tls.Certificate{pair}
		}
	}
	server := model.Service.NewServer()

	line := fmt.Sprintf("export GOVC_URL=%s GOVC_SIM_PID=%d\n", server.URL, os.Getpid())
	if *envFile == "" {
		fmt.Print(line)
	} else {
		// written under a temporary name and renamed, so a reader never sees half a line
		tmp := *envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o600); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *envFile); err != nil {
			log.Fatal(err)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	server.Close()
	model.Remove()
}
