# Providers of the Kubernetes target (upstream pins the same families in its versions.tf). Not available
# offline on this machine: `terraform init` needs the registry; `terraform validate` runs after it.
terraform {
  required_version = ">= 1.5"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.21.1"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubectl = {
      source  = "gavinbunney/kubectl"
      version = "~> 1.14"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "kubernetes" {
  config_path    = pathexpand(var.k8s_config_path)
  config_context = var.k8s_config_context
}

provider "helm" {
  helm_driver = "configmap"
  kubernetes {
    config_path    = pathexpand(var.k8s_config_path)
    config_context = var.k8s_config_context
  }
}

provider "kubectl" {
  config_path      = pathexpand(var.k8s_config_path)
  config_context   = var.k8s_config_context
  load_config_file = true
}
