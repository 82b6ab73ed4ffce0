// Command gopherlua runs a Lua file with gopher-lua, the Lua 5.1 interpreter Argo CD embeds for health checks,
// so docs/argocd-health.lua is tested by the same engine that runs it in production.
//
//	go run . ../health_test.lua ../../../../docs/argocd-health.lua
package main

import (
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gopherlua FILE.lua [ARGS...]")
		os.Exit(2)
	}
	L := lua.NewState()
	defer L.Close()
	args := L.NewTable()
	for i, a := range os.Args[1:] {
		L.RawSetInt(args, i, lua.LString(a))
	}
	L.SetGlobal("arg", args)
	if err := L.DoFile(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
