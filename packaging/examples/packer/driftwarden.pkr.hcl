# Packer: install the driftwarden agent in an image and, as the very last provisioner, record the
# image in a signed manifest and publish it to the controller.
#
#   packer build \
#     -var bake_key_file=$HOME/.driftwarden/bake.key \
#     -var driftwarden_url=https://drift.example.internal:8443 \
#     -var image_id="web-$(date -u +%Y%m%d%H%M%S)-$CI_PIPELINE_ID" .
#   # with DRIFTWARDEN_TOKEN (an operator token) in the environment of the machine running packer
#
# The signing key goes into the build VM's /run (a tmpfs, so never onto the image's disk) for the one
# step that signs and is deleted in that same step; the publishing token never enters the VM at all:
# the manifest is downloaded and published from the machine running packer.

variable "bake_key_file" {
  type        = string
  description = "ed25519 private key (PEM) that signs the manifest (driftwarden keygen); the controller trusts its .pub"
  sensitive   = true
}

variable "image_id" {
  type        = string
  description = "the id this image is known by in the fleet: the AMI id is not known until after the build, so a unique build id"
}

variable "driftwarden_url" {
  type = string
}

variable "agent_deb" {
  type    = string
  default = "dist/deb/driftwarden-agent_0.1.0_amd64.deb"
}

build {
  sources = ["source.amazon-ebs.base"] # your source block

  # --- early: install the agent (it will not start in the image: there is no manifest yet) ----------
  provisioner "file" {
    source      = var.agent_deb
    destination = "/tmp/driftwarden-agent.deb"
  }
  provisioner "shell" {
    inline = [
      "sudo apt-get install -y /tmp/driftwarden-agent.deb",
      "rm -f /tmp/driftwarden-agent.deb",
      # Report to the controller; the enrollment token comes per host from cloud-init (user-data.yaml).
      "printf 'controller:\\n  url: %s\\n  enrollmentTokenFile: /etc/driftwarden/enrollment-token\\n' '${var.driftwarden_url}' | sudo tee -a /etc/driftwarden/agent.yaml >/dev/null",
    ]
  }

  # ... the image's own provisioners go here ...

  # --- last: the manifest. Nothing may change the image after this step. ---------------------------
  provisioner "file" {
    source      = var.bake_key_file
    destination = "/tmp/bake.key.upload"
  }
  provisioner "shell" {
    inline = [
      "set -eu",
      "sudo install -d -m 0700 /run/driftwarden-bake",
      "sudo mv /tmp/bake.key.upload /run/driftwarden-bake/bake.key",
      "sudo chmod 0600 /run/driftwarden-bake/bake.key",
      "trap 'sudo rm -rf /run/driftwarden-bake' EXIT",
      "sudo install -d -m 0755 /etc/driftwarden/keys",
      "sudo openssl pkey -in /run/driftwarden-bake/bake.key -pubout -out /etc/driftwarden/keys/bake.pub",
      "sudo driftwarden manifest build --root / --image-id '${var.image_id}' --name '${source.name}' --source '${build.PackerRunUUID}' --config /etc/driftwarden/agent.yaml --sign-key /run/driftwarden-bake/bake.key --out /etc/driftwarden/manifest.json",
    ]
  }
  provisioner "file" {
    direction   = "download"
    source      = "/etc/driftwarden/manifest.json"
    destination = "manifest-${var.image_id}.json"
  }

  # Published only once the image exists; the controller keys it by image id and checks the signature.
  post-processor "shell-local" {
    inline = ["driftwarden manifest publish manifest-${var.image_id}.json --url ${var.driftwarden_url}"]
  }
}
