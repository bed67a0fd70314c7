// The tus project's own Node server (@tus/server + @tus/file-store), unencrypted:
// the reference bench/tus.py measures our tus endpoint against.
//   node bench/tus_reference/server.mjs PORT DIRECTORY
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const server = new Server({ path: "/files", datastore: new FileStore({ directory }) });
server.listen({ host: "127.0.0.1", port: Number(port) });
